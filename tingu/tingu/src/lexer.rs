//! Splits Tingu source into tokens with positions.

use crate::diag::{Error, Pos};

/// A token kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    /// An identifier or keyword.
    Ident(String),
    /// A decimal or `0x` hexadecimal integer.
    Int(u64),
    /// Punctuation, one or two characters.
    Punct(&'static str),
    /// End of input.
    Eof,
}

/// A token and where it starts.
#[derive(Clone, Debug)]
pub struct Token {
    /// Kind and text.
    pub tok: Tok,
    /// Start position.
    pub pos: Pos,
}

const PUNCT2: [&str; 7] = ["->", "==", "!=", "<=", ">=", "&&", "||"];
const PUNCT1: [&str; 19] = [
    "{", "}", "(", ")", "[", "]", ";", ":", ",", ".", "/", "=", "<", ">", "!", "?", "+", "-", "*",
];

/// Tokenises `src`; `file` is recorded in every position.
pub fn lex(src: &str, file: usize) -> Result<Vec<Token>, Error> {
    // A byte-order mark is not part of the text: editors on some systems
    // write one, and line 1's columns must not count it.
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1u32, 1u32);
    let advance = |i: &mut usize, line: &mut u32, col: &mut u32, n: usize| {
        for _ in 0..n {
            if chars[*i] == '\n' {
                *line += 1;
                *col = 1;
            } else {
                *col += 1;
            }
            *i += 1;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let pos = Pos { file, line, col };
        if c.is_whitespace() {
            advance(&mut i, &mut line, &mut col, 1);
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                advance(&mut i, &mut line, &mut col, 1);
            }
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                advance(&mut i, &mut line, &mut col, 1);
            }
            out.push(Token {
                tok: Tok::Ident(chars[start..i].iter().collect()),
                pos,
            });
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                advance(&mut i, &mut line, &mut col, 1);
            }
            let text: String = chars[start..i].iter().filter(|c| **c != '_').collect();
            let value = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            }
            .map_err(|_| Error::new(pos, format!("invalid integer literal `{text}`")))?;
            out.push(Token {
                tok: Tok::Int(value),
                pos,
            });
        } else {
            let next = chars.get(i + 1).copied();
            let two = |p: &&str| {
                let mut pc = p.chars();
                pc.next() == Some(c) && pc.next() == next
            };
            let p = if let Some(p) = PUNCT2.iter().find(|p| two(p)) {
                *p
            } else if let Some(p) = PUNCT1.iter().find(|p| p.starts_with(c)) {
                *p
            } else {
                return Err(Error::new(pos, format!("unexpected character `{c}`")));
            };
            advance(&mut i, &mut line, &mut col, p.chars().count());
            out.push(Token {
                tok: Tok::Punct(p),
                pos,
            });
        }
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: Pos { file, line, col },
    });
    Ok(out)
}
