//! Located diagnostics over TOML documents: every value keeps its byte span,
//! turned into `line:col` (columns count characters, as system-builder's
//! do) only when a diagnostic is written.

use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// One problem, in the format of every system description diagnostic:
/// `<file>:<line>:<col>: error: <what is wrong>; expected <what is expected>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diag {
    pub file: String,
    pub pos: Pos,
    pub warning: bool,
    pub message: String,
    pub expected: String,
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = if self.warning { "warning" } else { "error" };
        write!(
            f,
            "{}:{}: {severity}: {}; expected {}",
            self.file, self.pos, self.message, self.expected
        )
    }
}

/// A text being read, with its line index for positions.
pub struct Source<'a> {
    pub file: &'a str,
    pub text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Source {
            file,
            text,
            line_starts,
        }
    }

    /// The position of byte `offset` (clamped to the text).
    pub fn pos(&self, offset: usize) -> Pos {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        Pos {
            line: line as u32 + 1,
            col: col as u32 + 1,
        }
    }

    pub fn diag(
        &self,
        span: &Range<usize>,
        message: impl Into<String>,
        expected: impl Into<String>,
    ) -> Diag {
        Diag {
            file: self.file.to_string(),
            pos: self.pos(span.start),
            warning: false,
            message: message.into(),
            expected: expected.into(),
        }
    }

    /// Parses the whole text as a TOML document.
    pub fn parse(&self) -> Result<Spanned<DeTable<'a>>, Diag> {
        DeTable::parse(self.text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let message = e.message().trim_end().replace('\n', " ");
            self.diag(
                &span,
                format!("malformed TOML: {message}"),
                "a valid TOML document",
            )
        })
    }
}

/// A TOML table being read: typed getters that report what is wrong where,
/// and a check that no key is left unknown.
pub struct Table<'s, 'a> {
    pub src: &'s Source<'a>,
    pub table: &'s DeTable<'a>,
    /// Where the table starts (its header or its opening brace).
    pub span: Range<usize>,
    /// What the table is, for messages ("[[port]]", "region role 'hpet'").
    pub what: String,
}

/// A value with its place.
pub type At<T> = (T, Range<usize>);

impl<'s, 'a> Table<'s, 'a> {
    pub fn new(
        src: &'s Source<'a>,
        table: &'s DeTable<'a>,
        span: Range<usize>,
        what: impl Into<String>,
    ) -> Self {
        Table {
            src,
            table,
            span,
            what: what.into(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&'s Spanned<DeValue<'a>>> {
        self.table.get(key)
    }

    /// The entries in key order, each with the key's span.
    pub fn entries(
        &self,
    ) -> impl Iterator<Item = (&'s str, Range<usize>, &'s Spanned<DeValue<'a>>)> {
        self.table
            .iter()
            .map(|(k, v)| (k.get_ref().as_ref(), k.span(), v))
    }

    /// Reports every key not in `allowed`.
    pub fn check_keys(&self, allowed: &[&str], d: &mut Vec<Diag>) {
        for (key, span, _) in self.entries() {
            if !allowed.contains(&key) {
                let expected = if allowed.is_empty() {
                    "no keys here".to_string()
                } else {
                    format!("one of: {}", allowed.join(", "))
                };
                d.push(self.src.diag(
                    &span,
                    format!("unknown key '{key}' in {}", self.what),
                    expected,
                ));
            }
        }
    }

    fn wrong_type(&self, key: &str, v: &Spanned<DeValue<'a>>, want: &str) -> Diag {
        self.src.diag(
            &v.span(),
            format!(
                "'{key}' in {} is {}",
                self.what,
                article(v.get_ref().type_str())
            ),
            want.to_string(),
        )
    }

    fn missing(&self, key: &str, want: &str) -> Diag {
        self.src.diag(
            &self.span,
            format!("{} has no '{key}'", self.what),
            format!("{key} = {want}"),
        )
    }

    pub fn opt_str(&self, key: &str, d: &mut Vec<Diag>) -> Option<At<&'s str>> {
        let v = self.get(key)?;
        match v.get_ref().as_str() {
            Some(s) => Some((s, v.span())),
            None => {
                d.push(self.wrong_type(key, v, "a string"));
                None
            }
        }
    }

    pub fn str(&self, key: &str, want: &str, d: &mut Vec<Diag>) -> Option<At<&'s str>> {
        if self.get(key).is_none() {
            d.push(self.missing(key, want));
            return None;
        }
        self.opt_str(key, d)
    }

    pub fn opt_u64(&self, key: &str, d: &mut Vec<Diag>) -> Option<At<u64>> {
        let v = self.get(key)?;
        match integer(v.get_ref()) {
            Some(n) => Some((n, v.span())),
            None => {
                d.push(self.wrong_type(key, v, "a non-negative integer"));
                None
            }
        }
    }

    pub fn opt_bool(&self, key: &str, d: &mut Vec<Diag>) -> Option<At<bool>> {
        let v = self.get(key)?;
        match v.get_ref().as_bool() {
            Some(b) => Some((b, v.span())),
            None => {
                d.push(self.wrong_type(key, v, "true or false"));
                None
            }
        }
    }

    pub fn opt_table(&self, key: &str, d: &mut Vec<Diag>) -> Option<Table<'s, 'a>> {
        let v = self.get(key)?;
        match v.get_ref().as_table() {
            Some(t) => Some(Table::new(self.src, t, v.span(), format!("[{key}]"))),
            None => {
                d.push(self.wrong_type(key, v, "a table"));
                None
            }
        }
    }
}

/// A TOML integer as a u64 (decimal, hex, octal or binary), if it is one
/// and not negative.
pub fn integer(v: &DeValue<'_>) -> Option<u64> {
    let i = v.as_integer()?;
    u64::from_str_radix(i.as_str(), i.radix()).ok()
}

fn article(type_str: &str) -> String {
    match type_str.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {type_str}"),
        _ => format!("a {type_str}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters_from_one() {
        let src = Source::new("f.toml", "a = 1\nµb = 2\n");
        assert_eq!(src.pos(0), Pos { line: 1, col: 1 });
        assert_eq!(src.pos(6), Pos { line: 2, col: 1 });
        // 'b' follows a two-byte character: column 2, not 3.
        assert_eq!(src.pos(8), Pos { line: 2, col: 2 });
        assert_eq!(src.pos(1000), Pos { line: 3, col: 1 });
    }

    #[test]
    fn malformed_toml_is_located() {
        let src = Source::new("f.toml", "a = 1\nb = = 2\n");
        let e = src.parse().unwrap_err();
        assert_eq!(e.pos.line, 2);
        assert!(e.to_string().starts_with("f.toml:2:"), "{e}");
        assert!(e.message.starts_with("malformed TOML"), "{e}");
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_located() {
        let src = Source::new("f.toml", "[t]\nsize = \"big\"\ncolour = 1\n");
        let doc = src.parse().unwrap();
        let t = doc.get_ref().get("t").unwrap();
        let t = Table::new(&src, t.get_ref().as_table().unwrap(), t.span(), "[t]");
        let mut d = Vec::new();
        t.check_keys(&["size"], &mut d);
        assert_eq!(t.opt_u64("size", &mut d), None);
        let text: Vec<String> = d.iter().map(|x| x.to_string()).collect();
        assert_eq!(
            text,
            [
                "f.toml:3:1: error: unknown key 'colour' in [t]; expected one of: size",
                "f.toml:2:8: error: 'size' in [t] is a string; expected a non-negative integer",
            ]
        );
    }

    #[test]
    fn integers_in_every_radix() {
        let src = Source::new("f.toml", "a = 0x1000\nb = 0o17\nc = 1_000\nd = -1\n");
        let doc = src.parse().unwrap();
        let get = |k: &str| integer(doc.get_ref().get(k).unwrap().get_ref());
        assert_eq!(get("a"), Some(0x1000));
        assert_eq!(get("b"), Some(0o17));
        assert_eq!(get("c"), Some(1000));
        assert_eq!(get("d"), None);
    }
}
