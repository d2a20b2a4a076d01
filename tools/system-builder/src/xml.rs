//! First pass: system.xml text to draft items, checking each element on its
//! own (allowed elements and attributes, required attributes, number syntax,
//! value ranges). Cross-element checks live in `check`.
//!
//! An element with a bad attribute is reported and then left out of the
//! draft (or, for a protection domain, kept by name but marked not `ok`), so
//! that later checks never reason about half-parsed values.

use roxmltree::{Document, Node, NodeType};

use crate::diag::Diags;
use crate::model::{
    Board, DEFAULT_BUDGET_US, DEFAULT_STACK_SIZE, IoPort, Irq, IrqKind, IrqPolarity, IrqTrigger,
    MAX_PD_NAME_LEN, MAX_PRIORITY, MAX_STACK_SIZE, MIN_STACK_SIZE, PAGE_SIZE_4K, PageSize,
    PciAddress, Perms, SourcePos, aarch32, x86_64,
};

pub(crate) struct Draft {
    pub pds: Vec<PdDraft>,
    pub regions: Vec<RegionDraft>,
    pub channels: Vec<ChannelDraft>,
}

pub(crate) struct PdDraft {
    pub name: String,
    pub name_pos: SourcePos,
    /// False when a PD-level attribute was bad: the PD still claims its name
    /// (so references to it are not reported as unknown) but takes part in
    /// no further checks.
    pub ok: bool,
    pub priority: u8,
    pub stack_size: u64,
    pub budget_us: u64,
    pub period_us: u64,
    pub pos: SourcePos,
    pub image: Option<ImageDraft>,
    pub maps: Vec<MapDraft>,
    /// Each with the position of its `id` attribute.
    pub irqs: Vec<(Irq, SourcePos)>,
    pub ioports: Vec<(IoPort, SourcePos)>,
    pub setvars: Vec<SetVarDraft>,
}

pub(crate) struct ImageDraft {
    pub path: String,
    pub path_pos: SourcePos,
}

pub(crate) struct MapDraft {
    pub mr: String,
    pub mr_pos: SourcePos,
    pub vaddr: u64,
    pub vaddr_pos: SourcePos,
    pub perms: Perms,
    pub cached: bool,
    pub pos: SourcePos,
}

pub(crate) enum SetVarSource {
    MapVaddr { map: usize },
    MapSize { map: usize },
    RegionPaddr { mr: String, mr_pos: SourcePos },
    Id(u64),
    IoPortAddr(u64),
}

pub(crate) struct SetVarDraft {
    pub symbol: String,
    /// The attribute that names the symbol.
    pub pos: SourcePos,
    pub source: SetVarSource,
}

pub(crate) struct RegionDraft {
    pub name: String,
    pub name_pos: SourcePos,
    /// False when an attribute was bad; as for PDs, the name stays claimed.
    pub ok: bool,
    pub size: u64,
    pub page_size: PageSize,
    pub phys_addr: Option<u64>,
    pub phys_pos: SourcePos,
    pub pos: SourcePos,
}

pub(crate) struct EndDraft {
    pub pd: String,
    pub pd_pos: SourcePos,
    pub id: u64,
    pub id_pos: SourcePos,
    pub pp: bool,
    pub pp_pos: SourcePos,
    pub notify: bool,
    pub setvar_id: Option<(String, SourcePos)>,
    pub pos: SourcePos,
}

pub(crate) struct ChannelDraft {
    pub ends: [EndDraft; 2],
    pub pos: SourcePos,
}

const SYSTEM_CHILDREN: &str = "protection_domain, memory_region, channel";
const PD_CHILDREN: &str = "program_image, map, irq, ioport, setvar";
const PD_ATTRS: &[&str] = &[
    "name",
    "priority",
    "budget",
    "period",
    "passive",
    "stack_size",
    "smc",
    "cpu",
];
const MAP_ATTRS: &[&str] = &[
    "mr",
    "vaddr",
    "perms",
    "cached",
    "setvar_vaddr",
    "setvar_size",
];
const IOAPIC_ATTRS: &[&str] = &[
    "id",
    "setvar_id",
    "ioapic",
    "pin",
    "trigger",
    "polarity",
    "vector",
];
const MSI_ATTRS: &[&str] = &["id", "setvar_id", "pcidev", "handle", "vector"];
const GIC_ATTRS: &[&str] = &["id", "setvar_id", "irq", "trigger"];
const IOPORT_ATTRS: &[&str] = &["id", "setvar_id", "setvar_addr", "addr", "size"];
const REGION_ATTRS: &[&str] = &["name", "size", "page_size", "phys_addr"];
const END_ATTRS: &[&str] = &["pd", "id", "pp", "notify", "setvar_id"];

/// RAM the monitor can allocate regions from: seL4 5.0.0 on x86_64 hands
/// out as RAM untypeds only memory inside its kernel window, below
/// `PADDR_TOP` = `KERNEL_BASE - PPTR_BASE` (include/plat/pc99/plat/64/
/// plat_mode/machine/hardware.h), whatever the machine has.
pub(crate) const MAX_RAM_BYTES: u64 = 0xffff_ffff_8000_0000 - 0xffff_ff80_0000_0000;

/// Device memory ends below `PADDR_USER_DEVICE_TOP` (2^47, same header):
/// the kernel makes no device untypeds above it.
pub(crate) const DEVICE_ADDR_LIMIT: u64 = 1 << 47;

/// A byte count for people: `0x400000000000 bytes (64 TiB)`.
pub(crate) fn bytes_text(n: u64) -> String {
    const UNITS: [&str; 7] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let unit = (1..UNITS.len())
        .rev()
        .find(|&u| n >> (10 * u) != 0)
        .unwrap_or(0);
    let whole = n >> (10 * unit);
    if unit == 0 {
        return format!("{n:#x} bytes");
    }
    let exact = if whole << (10 * unit) == n {
        ""
    } else {
        "about "
    };
    format!("{n:#x} bytes ({exact}{whole} {})", UNITS[unit])
}

/// Byte offsets to 1-based lines and columns (columns in characters; a
/// leading byte-order mark is not counted). Built once per document, so
/// every position costs a binary search and a scan of at most one block:
/// roxmltree's own `text_pos_at` rescans from the start each time, which
/// made loading quadratic.
pub(crate) struct LineIndex<'t> {
    text: &'t str,
    line_starts: Vec<usize>,
    /// Characters before each `BLOCK`-byte boundary.
    chars_before: Vec<usize>,
    /// Bytes of the byte-order mark (0 or 3).
    bom: usize,
}

impl<'t> LineIndex<'t> {
    const BLOCK: usize = 64;

    pub(crate) fn new(text: &'t str) -> Self {
        let bytes = text.as_bytes();
        let mut line_starts = vec![0];
        let mut chars_before = Vec::with_capacity(bytes.len() / Self::BLOCK + 1);
        let mut chars = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if i % Self::BLOCK == 0 {
                chars_before.push(chars);
            }
            chars += usize::from(is_char_start(b));
            if b == b'\n' {
                line_starts.push(i + 1);
            }
        }
        chars_before.push(chars);
        let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
        LineIndex {
            text,
            line_starts,
            chars_before,
            bom,
        }
    }

    fn chars_upto(&self, byte: usize) -> usize {
        let block = byte / Self::BLOCK;
        let from = block * Self::BLOCK;
        self.chars_before[block]
            + self.text.as_bytes()[from..byte]
                .iter()
                .filter(|&&b| is_char_start(b))
                .count()
    }

    /// The position of byte `byte` (the end of the text if past it).
    pub(crate) fn pos(&self, byte: usize) -> SourcePos {
        let byte = byte.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= byte);
        let start = if line == 1 {
            self.bom.min(byte)
        } else {
            self.line_starts[line - 1]
        };
        let col = self.chars_upto(byte) - self.chars_upto(start) + 1;
        SourcePos {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            col: u32::try_from(col).unwrap_or(u32::MAX),
        }
    }

    /// The end of the text.
    fn end(&self) -> SourcePos {
        self.pos(self.text.len())
    }
}

fn is_char_start(b: u8) -> bool {
    b & 0xc0 != 0x80
}

/// Skips what may come before and between elements (`<?...?>`, comments,
/// `<!...>` declarations) from `i`; returns the offset of the next such
/// construct's end, or `None` if `i` starts none of them.
fn skip_markup(text: &str, i: usize) -> Option<usize> {
    let rest = &text[i..];
    let close = |open: &str, close: &str| {
        rest.starts_with(open).then(|| {
            rest[open.len()..]
                .find(close)
                .map_or(text.len(), |e| i + open.len() + e + close.len())
        })
    };
    close("<?", "?>")
        .or_else(|| close("<!--", "-->"))
        .or_else(|| close("<![CDATA[", "]]>"))
        .or_else(|| close("<!", ">"))
}

/// The offset of the first `<!DOCTYPE`, outside comments.
fn doctype_offset(text: &str) -> Option<usize> {
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with("<!DOCTYPE") {
            return Some(i);
        }
        i = skip_markup(text, i).unwrap_or(i + 1);
        while !text.is_char_boundary(i) {
            i += 1;
        }
    }
    None
}

/// The innermost element whose start tag was read but whose end tag never
/// came: its offset and name. Only used to place an error on a document
/// the XML parser already refused, so it needs no more than tag syntax.
fn unclosed_element(text: &str) -> Option<(usize, &str)> {
    let b = text.as_bytes();
    let mut open: Vec<(usize, &str)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        if let Some(end) = skip_markup(text, i) {
            i = end;
            continue;
        }
        let closing = b.get(i + 1) == Some(&b'/');
        let name_start = i + 1 + usize::from(closing);
        let name_end = text[name_start..]
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .map_or(text.len(), |e| name_start + e);
        let name = &text[name_start..name_end];
        // The end of the tag, outside quoted attribute values.
        let mut j = name_end;
        let mut quote = None;
        while j < b.len() {
            match (quote, b[j]) {
                (None, b'"' | b'\'') => quote = Some(b[j]),
                (Some(q), c) if c == q => quote = None,
                (None, b'>') => break,
                _ => {}
            }
            j += 1;
        }
        if closing {
            open.pop();
        } else if !(j > 0 && b.get(j - 1) == Some(&b'/')) {
            open.push((i, name));
        }
        i = j + 1;
    }
    open.pop()
}

/// A roxmltree error as a diagnostic at the place it concerns: the errors
/// roxmltree reports without a place (at 1:1) are placed here.
fn malformed(text: &str, index: &LineIndex, e: &roxmltree::Error) -> (SourcePos, String) {
    use roxmltree::Error as E;
    let p = e.pos();
    // roxmltree names the place inside its message; the diagnostic
    // already starts with it (corrected for a byte-order mark).
    let what = e
        .to_string()
        .replace(&format!(" at {}:{}", p.row, p.col), "");
    match e {
        E::UnexpectedEndOfStream => (index.end(), format!("{what} (the file ends inside markup)")),
        E::NoRootNode => (
            index.end(),
            "the document ends without a root element".into(),
        ),
        E::DtdDetected => (
            doctype_offset(text).map_or(index.end(), |o| index.pos(o)),
            "a DOCTYPE declaration (DTDs are not part of the system description format)".into(),
        ),
        E::UnclosedRootNode => match unclosed_element(text) {
            Some((offset, name)) => (
                index.pos(offset),
                format!("<{name}> is opened here and never closed"),
            ),
            None => (index.end(), what),
        },
        _ => {
            let col = if p.row == 1 && index.bom > 0 {
                p.col.saturating_sub(1).max(1)
            } else {
                p.col
            };
            (SourcePos { line: p.row, col }, what)
        }
    }
}

/// Parses the document; `None` if it is not well-formed XML (already
/// reported) or has no `<system>` root.
pub(crate) fn parse(text: &str, board: Board, d: &mut Diags) -> Option<Draft> {
    let index = LineIndex::new(text);
    let doc = match Document::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let (pos, what) = malformed(text, &index, &e);
            d.error(
                pos,
                format!("malformed XML: {what}"),
                "a well-formed XML document".into(),
            );
            return None;
        }
    };
    let mut cx = Ctx {
        index: &index,
        d,
        board,
    };
    let root = doc.root_element();
    if root.tag_name().name() != "system" || cx.foreign(root) {
        let pos = cx.pos(root);
        cx.d.error(
            pos,
            format!("the root element is <{}>", qualified(root)),
            "<system> as the root element".into(),
        );
        return None;
    }
    Elem::open(&mut cx, root, &[]);
    let mut draft = Draft {
        pds: Vec::new(),
        regions: Vec::new(),
        channels: Vec::new(),
    };
    for child in cx.element_children(root) {
        if cx.foreign(child) {
            cx.foreign_element(child, "system", SYSTEM_CHILDREN);
            continue;
        }
        match child.tag_name().name() {
            "protection_domain" => {
                if let Some(pd) = parse_pd(&mut cx, child) {
                    draft.pds.push(pd);
                }
            }
            "memory_region" => {
                if let Some(r) = parse_region(&mut cx, child) {
                    draft.regions.push(r);
                }
            }
            "channel" => {
                if let Some(c) = parse_channel(&mut cx, child) {
                    draft.channels.push(c);
                }
            }
            "virtual_machine" => cx.virtual_machine(child),
            other => {
                let pos = cx.pos(child);
                cx.d.error(
                    pos,
                    format!("unknown element <{other}> inside <system>"),
                    format!("one of: {SYSTEM_CHILDREN}"),
                );
            }
        }
    }
    Some(draft)
}

/// An element's name as written, with its namespace prefix if it has one.
fn qualified(node: Node) -> String {
    let name = node.tag_name().name();
    match node.tag_name().namespace() {
        None => name.to_string(),
        Some(ns) => match node.lookup_prefix(ns) {
            Some(prefix) if !prefix.is_empty() => format!("{prefix}:{name}"),
            _ => format!("{name} xmlns=\"{ns}\""),
        },
    }
}

struct Ctx<'a, 'd> {
    index: &'a LineIndex<'a>,
    d: &'d mut Diags,
    board: Board,
}

impl<'a, 'i> Ctx<'a, '_> {
    fn pos(&self, node: Node) -> SourcePos {
        self.index.pos(node.range().start)
    }

    /// Whether `node` is in an XML namespace: the system description format
    /// has none, so `<a:memory_region xmlns:a="...">` is not a memory
    /// region (the official Microkit tool does not read it as one either).
    fn foreign(&self, node: Node) -> bool {
        node.tag_name().namespace().is_some()
    }

    fn foreign_element(&mut self, node: Node, parent: &str, expected: &str) {
        let pos = self.pos(node);
        self.d.error(
            pos,
            format!(
                "element <{}> inside <{parent}> is in an XML namespace, which the system description format does not use",
                qualified(node)
            ),
            format!("one of: {expected}, without a namespace prefix or xmlns"),
        );
    }

    /// Child elements, after reporting any stray text between them.
    fn element_children(&mut self, node: Node<'a, 'i>) -> Vec<Node<'a, 'i>> {
        let mut out = Vec::new();
        for child in node.children() {
            match child.node_type() {
                NodeType::Element => out.push(child),
                NodeType::Text => {
                    let text = child.text().unwrap_or("").trim();
                    if !text.is_empty() {
                        let offset = child.text().unwrap_or("").find(text).unwrap_or(0);
                        let pos = self.index.pos(child.range().start + offset);
                        let shown: String = text.chars().take(20).collect();
                        self.d.error(
                            pos,
                            format!(
                                "unexpected text '{shown}' inside <{}>",
                                node.tag_name().name()
                            ),
                            "only elements and comments".into(),
                        );
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Elements that take no children.
    fn no_children(&mut self, node: Node<'a, 'i>) {
        for child in self.element_children(node) {
            let pos = self.pos(child);
            self.d.error(
                pos,
                format!(
                    "unexpected element <{}> inside <{}>",
                    child.tag_name().name(),
                    node.tag_name().name()
                ),
                format!("<{}> to have no child elements", node.tag_name().name()),
            );
        }
    }

    fn virtual_machine(&mut self, node: Node) {
        let pos = self.pos(node);
        self.d.error(
            pos,
            "virtual_machine is not supported by this builder (the seL4 5.0.0 kernel here is not built as a hypervisor)".into(),
            "no <virtual_machine> elements".into(),
        );
    }
}

/// One element being read: reports attribute problems and remembers
/// whether any occurred.
struct Elem<'c, 'a, 'i, 'd> {
    cx: &'c mut Ctx<'a, 'd>,
    node: Node<'a, 'i>,
    ok: bool,
}

impl<'c, 'a, 'i, 'd> Elem<'c, 'a, 'i, 'd> {
    fn open(cx: &'c mut Ctx<'a, 'd>, node: Node<'a, 'i>, allowed: &[&str]) -> Self {
        let mut e = Elem { cx, node, ok: true };
        for attr in node.attributes() {
            if let Some(ns) = attr.namespace() {
                let pos = e.cx.index.pos(attr.range().start);
                let name = match node.lookup_prefix(ns) {
                    Some(prefix) => format!("{prefix}:{}", attr.name()),
                    None => attr.name().to_string(),
                };
                e.fail(
                    pos,
                    format!(
                        "attribute '{name}' on <{}> is in an XML namespace, which the system description format does not use",
                        e.tag()
                    ),
                    "attributes without a namespace prefix".into(),
                );
            } else if !allowed.contains(&attr.name()) {
                let pos = e.cx.index.pos(attr.range().start);
                let expected = if allowed.is_empty() {
                    format!("<{}> without attributes", e.tag())
                } else {
                    format!("one of: {}", allowed.join(", "))
                };
                e.fail(
                    pos,
                    format!("unknown attribute '{}' on <{}>", attr.name(), e.tag()),
                    expected,
                );
            }
        }
        e
    }

    fn tag(&self) -> &'a str {
        self.node.tag_name().name()
    }

    fn pos(&self) -> SourcePos {
        self.cx.pos(self.node)
    }

    /// Where attribute `name` starts, or the element if it is absent.
    fn attr_pos(&self, name: &str) -> SourcePos {
        self.node
            .attributes()
            .find(|a| a.name() == name)
            .map(|a| self.cx.index.pos(a.range().start))
            .unwrap_or_else(|| self.pos())
    }

    fn fail(&mut self, pos: SourcePos, message: String, expected: String) {
        self.ok = false;
        self.cx.d.error(pos, message, expected);
    }

    fn fail_attr(&mut self, name: &str, message: String, expected: String) {
        let pos = self.attr_pos(name);
        self.fail(pos, message, expected);
    }

    fn has(&self, name: &str) -> bool {
        self.node.has_attribute(name)
    }

    fn opt_str(&self, name: &str) -> Option<&'a str> {
        self.node.attribute(name)
    }

    fn req_str(&mut self, name: &str, what: &str) -> Option<&'a str> {
        let v = self.node.attribute(name);
        if v.is_none() {
            let pos = self.pos();
            let tag = self.tag();
            self.fail(
                pos,
                format!("<{tag}> is missing the required attribute '{name}'"),
                format!("{name}=\"...\" giving {what}"),
            );
        }
        v
    }

    /// A symbol-naming attribute: must not be empty.
    fn opt_symbol(&mut self, name: &str) -> Option<(String, SourcePos)> {
        let v = self.opt_str(name)?;
        let pos = self.attr_pos(name);
        if v.is_empty() {
            self.fail(
                pos,
                format!("{name} is empty"),
                "the name of a symbol in the program image".into(),
            );
            return None;
        }
        Some((v.to_string(), pos))
    }

    /// Parses attribute `name` as a number; absent gives `None` without
    /// complaint, malformed gives `None` and an error.
    fn opt_num(&mut self, name: &str) -> Option<u64> {
        let text = self.opt_str(name)?;
        match parse_number(text) {
            Ok(v) => Some(v),
            Err(why) => {
                let tag = self.tag();
                self.fail_attr(
                    name,
                    format!("{name}=\"{text}\" on <{tag}> is not a valid number ({why})"),
                    "a decimal number or a 0x-prefixed hexadecimal number".into(),
                );
                None
            }
        }
    }

    fn req_num(&mut self, name: &str, what: &str) -> Option<u64> {
        self.req_str(name, what)?;
        self.opt_num(name)
    }

    fn num_or(&mut self, name: &str, default: u64) -> Option<u64> {
        if self.has(name) {
            self.opt_num(name)
        } else {
            Some(default)
        }
    }

    fn bool_or(&mut self, name: &str, default: bool) -> bool {
        match self.opt_str(name) {
            None => default,
            Some("true") => true,
            Some("false") => false,
            Some(other) => {
                let tag = self.tag();
                self.fail_attr(
                    name,
                    format!("{name}=\"{other}\" on <{tag}> is not a boolean"),
                    format!("{name}=\"true\" or {name}=\"false\""),
                );
                default
            }
        }
    }

    /// Reports `name` when `value` lies outside `lo..=hi`.
    fn in_range(&mut self, name: &str, value: u64, lo: u64, hi: u64, hex: bool) -> bool {
        if (lo..=hi).contains(&value) {
            return true;
        }
        let tag = self.tag();
        let show = |v: u64| {
            if hex {
                format!("{v:#x}")
            } else {
                v.to_string()
            }
        };
        self.fail_attr(
            name,
            format!("{name} {} on <{tag}> is out of range", show(value)),
            format!("{name} between {} and {}", show(lo), show(hi)),
        );
        false
    }
}

/// Decimal or `0x` hexadecimal, with `_` separators allowed as in Microkit.
pub(crate) fn parse_number(text: &str) -> Result<u64, &'static str> {
    let digits: String = text.chars().filter(|&c| c != '_').collect();
    let (body, radix) = match digits.strip_prefix("0x") {
        Some(hex) => (hex, 16),
        None => (digits.as_str(), 10),
    };
    if body.is_empty() {
        return Err("no digits");
    }
    if !body.chars().all(|c| c.is_digit(radix)) {
        return Err(if radix == 16 {
            "not a hexadecimal digit"
        } else {
            "not a decimal digit"
        });
    }
    u64::from_str_radix(body, radix).map_err(|_| "does not fit in 64 bits")
}

fn parse_pd<'a, 'i>(cx: &mut Ctx<'a, '_>, node: Node<'a, 'i>) -> Option<PdDraft> {
    let mut e = Elem::open(cx, node, PD_ATTRS);
    let name = e.req_str("name", "a unique protection domain name");
    let name_pos = e.attr_pos("name");
    if let Some(n) = name
        && (n.is_empty() || n.len() > MAX_PD_NAME_LEN)
    {
        e.fail(
            name_pos,
            format!("protection domain name '{n}' has {} bytes", n.len()),
            format!("a name of 1 to {MAX_PD_NAME_LEN} bytes"),
        );
    }

    let priority = e.num_or("priority", 0);
    if let Some(p) = priority {
        e.in_range("priority", p, 0, MAX_PRIORITY.into(), false);
    }

    let stack_size = e.num_or("stack_size", DEFAULT_STACK_SIZE);
    if let Some(s) = stack_size
        && e.in_range("stack_size", s, MIN_STACK_SIZE, MAX_STACK_SIZE, true)
        && s % PAGE_SIZE_4K != 0
    {
        e.fail_attr(
            "stack_size",
            format!("stack_size {s:#x} is not a multiple of the page size"),
            format!("a multiple of {PAGE_SIZE_4K:#x}"),
        );
    }

    // Budget and period only mean something to an MCS kernel. They are
    // checked for consistency as Microkit does, then ignored with a warning.
    let budget = e.num_or("budget", DEFAULT_BUDGET_US);
    let period = budget.and_then(|b| e.num_or("period", b));
    if let (Some(b), Some(p)) = (budget, period) {
        if b > p {
            e.fail_attr(
                "budget",
                format!("budget ({b} us) is larger than period ({p} us)"),
                "budget less than or equal to period".into(),
            );
        } else {
            for (attr, v) in [("budget", b), ("period", p)] {
                if e.has(attr) && v != DEFAULT_BUDGET_US {
                    let pos = e.attr_pos(attr);
                    e.cx.d.warning(
                        pos,
                        format!(
                            "{attr}=\"{}\" is ignored: scheduling budgets and periods need an MCS kernel, and seL4 5.0.0 here is built without MCS, so this PD runs unbounded at its priority",
                            e.opt_str(attr).unwrap_or_default()
                        ),
                        format!("no {attr} attribute, or the default {DEFAULT_BUDGET_US}"),
                    );
                }
            }
        }
    }

    if e.bool_or("passive", false) {
        e.fail_attr(
            "passive",
            "passive protection domains need an MCS kernel (they run on their callers' scheduling contexts), and seL4 5.0.0 here is built without MCS".into(),
            "passive=\"false\" or no passive attribute".into(),
        );
    }
    if e.bool_or("smc", false) {
        e.fail_attr(
            "smc",
            "smc (ARM secure monitor call forwarding) does not exist on x86_64".into(),
            "smc=\"false\" or no smc attribute".into(),
        );
    }
    if let Some(cpu) = e.num_or("cpu", 0)
        && cpu != 0
    {
        e.fail_attr(
            "cpu",
            format!("cpu {cpu} is not available: this builder boots seL4 on a single core"),
            "cpu=\"0\" or no cpu attribute".into(),
        );
    }

    let pd_ok = e.ok;
    let pos = e.pos();
    let mut pd = PdDraft {
        name: name.unwrap_or_default().to_string(),
        name_pos,
        ok: pd_ok,
        priority: priority.and_then(|p| u8::try_from(p).ok()).unwrap_or(0),
        stack_size: stack_size.unwrap_or(DEFAULT_STACK_SIZE),
        budget_us: budget.unwrap_or(DEFAULT_BUDGET_US),
        period_us: period.unwrap_or(DEFAULT_BUDGET_US),
        pos,
        image: None,
        maps: Vec::new(),
        irqs: Vec::new(),
        ioports: Vec::new(),
        setvars: Vec::new(),
    };

    let mut image_seen = false;
    for child in cx.element_children(node) {
        if cx.foreign(child) {
            cx.foreign_element(child, "protection_domain", PD_CHILDREN);
            continue;
        }
        match child.tag_name().name() {
            "program_image" => {
                if image_seen {
                    let p = cx.pos(child);
                    cx.d.error(
                        p,
                        format!("protection domain '{}' has a second program_image", pd.name),
                        "exactly one <program_image> per protection domain".into(),
                    );
                    continue;
                }
                image_seen = true;
                pd.image = parse_image(cx, child);
            }
            "map" => parse_map(cx, child, &mut pd),
            "irq" => parse_irq(cx, child, &mut pd),
            "ioport" => parse_ioport(cx, child, &mut pd),
            "setvar" => parse_setvar(cx, child, &mut pd),
            "protection_domain" => {
                let p = cx.pos(child);
                cx.d.error(
                    p,
                    "child protection_domain is not supported by this builder".into(),
                    "every <protection_domain> directly inside <system>".into(),
                );
            }
            "virtual_machine" => cx.virtual_machine(child),
            other => {
                let p = cx.pos(child);
                cx.d.error(
                    p,
                    format!("unknown element <{other}> inside <protection_domain>"),
                    format!("one of: {PD_CHILDREN}"),
                );
            }
        }
    }
    if !image_seen {
        cx.d.error(
            pos,
            format!("protection domain '{}' has no program_image", pd.name),
            "exactly one <program_image path=\"...\"/> per protection domain".into(),
        );
    }
    // Without a name nothing can refer to this PD, so drop it entirely.
    name.map(|_| pd)
}

fn parse_image<'a, 'i>(cx: &mut Ctx<'a, '_>, node: Node<'a, 'i>) -> Option<ImageDraft> {
    let mut e = Elem::open(cx, node, &["path"]);
    let path = e.req_str("path", "the ELF file of the protection domain");
    let path_pos = e.attr_pos("path");
    if path == Some("") {
        e.fail(
            path_pos,
            "program_image path is empty".into(),
            "the path of an ELF file".into(),
        );
    }
    let ok = e.ok;
    cx.no_children(node);
    path.filter(|_| ok).map(|p| ImageDraft {
        path: p.to_string(),
        path_pos,
    })
}

fn parse_perms(text: &str) -> Result<Perms, String> {
    let mut perms = Perms::default();
    for c in text.chars() {
        let slot = match c {
            'r' => &mut perms.read,
            'w' => &mut perms.write,
            'x' => &mut perms.execute,
            _ => return Err(format!("'{c}' is not a permission")),
        };
        if *slot {
            return Err(format!("'{c}' appears twice"));
        }
        *slot = true;
    }
    if perms == Perms::default() {
        return Err("no permission given".into());
    }
    if perms == Perms::new(false, true, false) {
        // No architecture seL4 supports maps pages write-only.
        return Err("write-only mappings are not possible".into());
    }
    Ok(perms)
}

fn parse_map<'a, 'i>(cx: &mut Ctx<'a, '_>, node: Node<'a, 'i>, pd: &mut PdDraft) {
    let mut e = Elem::open(cx, node, MAP_ATTRS);
    let mr = e.req_str("mr", "the name of a memory_region");
    let mr_pos = e.attr_pos("mr");
    let vaddr = e.req_num("vaddr", "the virtual address to map at");
    let vaddr_pos = e.attr_pos("vaddr");
    let perms = match e.opt_str("perms") {
        None => Perms::new(true, true, false),
        Some(text) => match parse_perms(text) {
            Ok(p) => p,
            Err(why) => {
                e.fail_attr(
                    "perms",
                    format!("perms=\"{text}\" is not valid: {why}"),
                    "a non-empty combination of 'r', 'w' and 'x' (not 'w' alone)".into(),
                );
                Perms::default()
            }
        },
    };
    let cached = e.bool_or("cached", true);
    let setvar_vaddr = e.opt_symbol("setvar_vaddr");
    let setvar_size = e.opt_symbol("setvar_size");
    let ok = e.ok;
    let pos = e.pos();
    cx.no_children(node);
    let (Some(mr), Some(vaddr), true) = (mr, vaddr, ok) else {
        return;
    };
    let index = pd.maps.len();
    pd.maps.push(MapDraft {
        mr: mr.to_string(),
        mr_pos,
        vaddr,
        vaddr_pos,
        perms,
        cached,
        pos,
    });
    if let Some((symbol, pos)) = setvar_vaddr {
        pd.setvars.push(SetVarDraft {
            symbol,
            pos,
            source: SetVarSource::MapVaddr { map: index },
        });
    }
    if let Some((symbol, pos)) = setvar_size {
        pd.setvars.push(SetVarDraft {
            symbol,
            pos,
            source: SetVarSource::MapSize { map: index },
        });
    }
}

/// The `id` of an irq, ioport or channel end.
fn parse_id(e: &mut Elem, max: u64) -> Option<u64> {
    let id = e.req_num("id", "the channel id")?;
    e.in_range("id", id, 0, max, false).then_some(id)
}

/// The highest channel id of the board (its badge width).
fn max_channel_id(e: &Elem) -> u64 {
    e.cx.board.layout().max_channel_id
}

fn parse_irq<'a, 'i>(cx: &mut Ctx<'a, '_>, node: Node<'a, 'i>, pd: &mut PdDraft) {
    let (is_ioapic, is_msi) = (node.has_attribute("pin"), node.has_attribute("pcidev"));
    let is_gic = cx.board.is_arm() && !is_ioapic && !is_msi;
    let allowed = if is_gic {
        GIC_ATTRS
    } else if is_msi && !is_ioapic {
        MSI_ATTRS
    } else {
        IOAPIC_ATTRS
    };
    let mut e = Elem::open(cx, node, allowed);
    let max_id = max_channel_id(&e);
    let id = parse_id(&mut e, max_id);
    let id_pos = e.attr_pos("id");
    let setvar_id = e.opt_symbol("setvar_id");
    let pos = e.pos();
    let kind = if is_gic {
        parse_gic(&mut e)
    } else if e.cx.board.is_arm() {
        let board = e.cx.board;
        e.fail(
            pos,
            format!("<irq> with pin or pcidev is the x86 form, which board {board} (32-bit ARM) does not have"),
            "irq=\"...\" giving the GIC interrupt ID".into(),
        );
        None
    } else if is_ioapic {
        parse_ioapic(&mut e)
    } else if is_msi {
        parse_msi(&mut e)
    } else {
        let message = if e.has("irq") {
            "<irq irq=\"...\"> is the ARM/RISC-V form, which x86_64 does not have".into()
        } else {
            "<irq> names no interrupt source".into()
        };
        e.fail(
            pos,
            message,
            "pin=\"...\" and vector=\"...\" for an IOAPIC interrupt, or pcidev=\"bus:dev.func\", handle=\"...\" and vector=\"...\" for an MSI".into(),
        );
        None
    };
    let ok = e.ok;
    cx.no_children(node);
    let (Some(id), Some(kind), true) = (id, kind, ok) else {
        return;
    };
    pd.irqs.push((Irq { id, kind, pos }, id_pos));
    if let Some((symbol, pos)) = setvar_id {
        pd.setvars.push(SetVarDraft {
            symbol,
            pos,
            source: SetVarSource::Id(id),
        });
    }
}

fn parse_vector(e: &mut Elem) -> Option<u64> {
    let v = e.req_num("vector", "the seL4 IRQ vector")?;
    e.in_range("vector", v, 0, x86_64::MAX_IRQ_VECTOR, false)
        .then_some(v)
}

/// An ARM interrupt: the GIC interrupt ID of one of the SoC's shared
/// peripheral interrupts; this kernel makes every one level-triggered.
fn parse_gic(e: &mut Elem) -> Option<IrqKind> {
    let irq = e.req_num("irq", "the GIC interrupt ID")?;
    let irq = e
        .in_range("irq", irq, aarch32::FIRST_SPI, aarch32::MAX_IRQ, false)
        .then_some(irq);
    match e.opt_str("trigger") {
        None | Some("level") => {}
        Some("edge") => e.fail_attr(
            "trigger",
            "trigger=\"edge\": seL4 5.0.0 on ARM configures every GIC interrupt level-triggered and lets no one change it".into(),
            "trigger=\"level\" (or no trigger attribute)".into(),
        ),
        Some(other) => e.fail_attr(
            "trigger",
            format!("trigger=\"{other}\" is not a trigger mode"),
            "trigger=\"level\"".into(),
        ),
    }
    Some(IrqKind::Gic { irq: irq? })
}

fn parse_ioapic(e: &mut Elem) -> Option<IrqKind> {
    let ioapic = e.num_or("ioapic", 0);
    let pin = e.opt_num("pin");
    let pin = pin.filter(|&p| e.in_range("pin", p, 0, x86_64::IOAPIC_PINS - 1, false));
    let trigger = match e.opt_str("trigger") {
        None | Some("level") => Some(IrqTrigger::Level),
        Some("edge") => Some(IrqTrigger::Edge),
        Some(other) => {
            e.fail_attr(
                "trigger",
                format!("trigger=\"{other}\" is not a trigger mode"),
                "trigger=\"level\" or trigger=\"edge\"".into(),
            );
            None
        }
    };
    let polarity = match e.opt_str("polarity") {
        None | Some("high") => Some(IrqPolarity::ActiveHigh),
        Some("low") => Some(IrqPolarity::ActiveLow),
        Some(other) => {
            e.fail_attr(
                "polarity",
                format!("polarity=\"{other}\" is not a polarity"),
                "polarity=\"high\" or polarity=\"low\"".into(),
            );
            None
        }
    };
    let vector = parse_vector(e);
    Some(IrqKind::Ioapic {
        ioapic: ioapic?,
        pin: pin?,
        trigger: trigger?,
        polarity: polarity?,
        vector: vector?,
    })
}

fn parse_pci(text: &str) -> Option<PciAddress> {
    let (bus, rest) = text.split_once(':')?;
    let (dev, func) = rest.split_once('.')?;
    let field = |s: &str, max: u8| {
        let s = s.trim();
        if s.is_empty() || s.len() > 2 {
            return None;
        }
        u8::from_str_radix(s, 16).ok().filter(|&v| v <= max)
    };
    Some(PciAddress {
        bus: field(bus, 0xff)?,
        dev: field(dev, 0x1f)?,
        func: field(func, 7)?,
    })
}

fn parse_msi(e: &mut Elem) -> Option<IrqKind> {
    let text = e.opt_str("pcidev").unwrap_or_default();
    let pci = parse_pci(text);
    if pci.is_none() {
        e.fail_attr(
            "pcidev",
            format!("pcidev=\"{text}\" is not a PCI address"),
            "bus:dev.func in hexadecimal, with bus <= ff, dev <= 1f, func <= 7 (for example 00:03.0)".into(),
        );
    }
    let handle = e.req_num("handle", "the MSI handle");
    let vector = parse_vector(e);
    Some(IrqKind::Msi {
        pci: pci?,
        handle: handle?,
        vector: vector?,
    })
}

fn parse_ioport<'a, 'i>(cx: &mut Ctx<'a, '_>, node: Node<'a, 'i>, pd: &mut PdDraft) {
    if cx.board.is_arm() {
        let (pos, board) = (cx.pos(node), cx.board);
        cx.d.error(
            pos,
            format!("<ioport>: board {board} (32-bit ARM) has no I/O ports"),
            "device registers as a memory_region with phys_addr, mapped with cached=\"false\""
                .into(),
        );
        return;
    }
    let mut e = Elem::open(cx, node, IOPORT_ATTRS);
    let id = parse_id(&mut e, x86_64::MAX_IOPORT_ID);
    let id_pos = e.attr_pos("id");
    let addr = e.req_num("addr", "the first I/O port");
    let size = e.req_num("size", "the number of I/O ports");
    if let (Some(a), Some(s)) = (addr, size) {
        if s == 0 {
            e.fail_attr(
                "size",
                "ioport size is 0".into(),
                "at least one port".into(),
            );
        } else if a
            .checked_add(s)
            .is_none_or(|end| end > x86_64::IOPORT_SPACE)
        {
            e.fail_attr(
                "size",
                format!(
                    "ioport range [{a:#x}..{:#x}) runs past the last I/O port {:#x}",
                    u128::from(a) + u128::from(s),
                    x86_64::IOPORT_SPACE - 1
                ),
                format!("addr + size <= {:#x}", x86_64::IOPORT_SPACE),
            );
        }
    }
    let setvar_id = e.opt_symbol("setvar_id");
    let setvar_addr = e.opt_symbol("setvar_addr");
    let ok = e.ok;
    let pos = e.pos();
    cx.no_children(node);
    let (Some(id), Some(addr), Some(size), true) = (id, addr, size, ok) else {
        return;
    };
    pd.ioports.push((
        IoPort {
            id,
            addr,
            size,
            pos,
        },
        id_pos,
    ));
    for (sym, source) in [
        (setvar_id, SetVarSource::Id(id)),
        (setvar_addr, SetVarSource::IoPortAddr(addr)),
    ] {
        if let Some((symbol, pos)) = sym {
            pd.setvars.push(SetVarDraft {
                symbol,
                pos,
                source,
            });
        }
    }
}

fn parse_setvar<'a, 'i>(cx: &mut Ctx<'a, '_>, node: Node<'a, 'i>, pd: &mut PdDraft) {
    let mut e = Elem::open(cx, node, &["symbol", "region_paddr"]);
    e.req_str("symbol", "the ELF symbol to patch");
    let symbol = e.opt_symbol("symbol");
    let region = e.req_str(
        "region_paddr",
        "the memory_region whose physical address to store",
    );
    let mr_pos = e.attr_pos("region_paddr");
    let ok = e.ok;
    cx.no_children(node);
    if let (Some((symbol, pos)), Some(mr), true) = (symbol, region, ok) {
        pd.setvars.push(SetVarDraft {
            symbol,
            pos,
            source: SetVarSource::RegionPaddr {
                mr: mr.to_string(),
                mr_pos,
            },
        });
    }
}

fn parse_region<'a, 'i>(cx: &mut Ctx<'a, '_>, node: Node<'a, 'i>) -> Option<RegionDraft> {
    let mut e = Elem::open(cx, node, REGION_ATTRS);
    let name = e.req_str("name", "a unique memory region name");
    let name_pos = e.attr_pos("name");
    if name == Some("") {
        e.fail(
            name_pos,
            "memory region name is empty".into(),
            "a non-empty name".into(),
        );
    }
    let size = e.req_num("size", "the region size in bytes");
    let board = e.cx.board;
    let page_size = match e.num_or("page_size", PAGE_SIZE_4K) {
        Some(bytes) => {
            let p = PageSize::from_bytes(board, bytes);
            if p.is_none() {
                e.fail_attr(
                    "page_size",
                    format!(
                        "page_size {bytes:#x} is not {} {} page size",
                        if board.is_arm() { "a" } else { "an" },
                        board.layout().arch
                    ),
                    format!(
                        "page_size=\"0x1000\" or page_size=\"{:#x}\"",
                        board.large_page().bytes()
                    ),
                );
            }
            p
        }
        None => None,
    };
    if let (Some(size), Some(page)) = (size, page_size) {
        if size == 0 {
            e.fail_attr(
                "size",
                "memory region size is 0".into(),
                "a positive multiple of the page size".into(),
            );
        } else if size % page.bytes() != 0 {
            e.fail_attr(
                "size",
                format!(
                    "memory region size {size:#x} is not a multiple of the page size {:#x}",
                    page.bytes()
                ),
                format!("a multiple of {:#x}", page.bytes()),
            );
        }
    }
    let phys_addr = e.opt_num("phys_addr");
    match (size, phys_addr) {
        (Some(size), None) if size > MAX_RAM_BYTES => e.fail_attr(
            "size",
            format!(
                "memory region of {} is larger than all the RAM seL4 5.0.0 on x86_64 can hand out ({}, the kernel's physical memory window), on any machine",
                bytes_text(size),
                bytes_text(MAX_RAM_BYTES)
            ),
            format!("a size of at most {MAX_RAM_BYTES:#x}"),
        ),
        (Some(size), Some(pa)) if pa.checked_add(size).is_some_and(|end| end > DEVICE_ADDR_LIMIT) => {
            e.fail_attr(
                "phys_addr",
                format!(
                    "device region [{pa:#x} + {size:#x}) ends above {DEVICE_ADDR_LIMIT:#x}, the highest physical address seL4 5.0.0 on x86_64 gives out as device memory"
                ),
                format!("phys_addr + size <= {DEVICE_ADDR_LIMIT:#x}"),
            );
        }
        _ => {}
    }
    if let (Some(pa), Some(page)) = (phys_addr, page_size)
        && pa % page.bytes() != 0
    {
        e.fail_attr(
            "phys_addr",
            format!(
                "phys_addr {pa:#x} is not aligned to the page size {:#x}",
                page.bytes()
            ),
            format!("a multiple of {:#x}", page.bytes()),
        );
    }
    if let (Some(pa), Some(size)) = (phys_addr, size)
        && pa.checked_add(size).is_none()
    {
        e.fail_attr(
            "phys_addr",
            format!("region [{pa:#x} + {size:#x}) wraps around the address space"),
            "phys_addr + size below 2^64".into(),
        );
    }
    let phys_pos = e.attr_pos("phys_addr");
    let ok = e.ok;
    let pos = e.pos();
    cx.no_children(node);
    Some(RegionDraft {
        name: name?.to_string(),
        name_pos,
        ok: ok && size.is_some() && page_size.is_some(),
        size: size.unwrap_or(0),
        page_size: page_size.unwrap_or(PageSize::Small),
        phys_addr,
        phys_pos,
        pos,
    })
}

fn parse_end<'a, 'i>(cx: &mut Ctx<'a, '_>, node: Node<'a, 'i>) -> Option<EndDraft> {
    let mut e = Elem::open(cx, node, END_ATTRS);
    let pd = e.req_str("pd", "the name of a protection domain");
    let max_id = max_channel_id(&e);
    let id = parse_id(&mut e, max_id);
    let pp = e.bool_or("pp", false);
    let notify = e.bool_or("notify", true);
    let setvar_id = e.opt_symbol("setvar_id");
    let end = EndDraft {
        pd: pd.unwrap_or_default().to_string(),
        pd_pos: e.attr_pos("pd"),
        id: id.unwrap_or_default(),
        id_pos: e.attr_pos("id"),
        pp,
        pp_pos: e.attr_pos("pp"),
        notify,
        setvar_id,
        pos: e.pos(),
    };
    let ok = e.ok && pd.is_some() && id.is_some();
    cx.no_children(node);
    ok.then_some(end)
}

fn parse_channel<'a, 'i>(cx: &mut Ctx<'a, '_>, node: Node<'a, 'i>) -> Option<ChannelDraft> {
    let e = Elem::open(cx, node, &[]);
    let mut ok = e.ok;
    let pos = e.pos();
    let mut ends = Vec::new();
    let mut end_count = 0;
    for child in cx.element_children(node) {
        if cx.foreign(child) {
            cx.foreign_element(child, "channel", "end");
            ok = false;
            continue;
        }
        if child.tag_name().name() != "end" {
            let p = cx.pos(child);
            cx.d.error(
                p,
                format!(
                    "unknown element <{}> inside <channel>",
                    child.tag_name().name()
                ),
                "exactly two <end> elements".into(),
            );
            ok = false;
            continue;
        }
        end_count += 1;
        match parse_end(cx, child) {
            Some(end) => ends.push(end),
            None => ok = false,
        }
    }
    if end_count != 2 {
        cx.d.error(
            pos,
            format!("<channel> has {end_count} <end> element(s)"),
            "exactly two <end> elements".into(),
        );
        return None;
    }
    let [a, b]: [EndDraft; 2] = ends.try_into().ok()?;
    if !ok {
        return None;
    }
    if a.pp && b.pp {
        cx.d.error(
            b.pp_pos,
            "both ends of the channel have pp=\"true\"; a protected procedure call goes one way only".into(),
            "pp=\"true\" on at most one end (the caller)".into(),
        );
        return None;
    }
    Some(ChannelDraft { ends: [a, b], pos })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index agrees with roxmltree's own (slow) positions on text with
    /// long lines, empty lines and multi-byte characters, at every byte
    /// where a character starts.
    #[test]
    fn line_index_matches_roxmltree() {
        let mut text = String::from("<system>\n\n");
        for i in 0..120 {
            text.push_str(&"é✓a".repeat(i % 37));
            text.push_str(if i % 5 == 0 { "\n" } else { " " });
        }
        text.push_str("</system>");
        let doc = Document::parse(&text).unwrap();
        let index = LineIndex::new(&text);
        for byte in (0..=text.len()).filter(|&b| text.is_char_boundary(b)) {
            let p = doc.text_pos_at(byte);
            assert_eq!(
                index.pos(byte),
                SourcePos {
                    line: p.row,
                    col: p.col
                },
                "at byte {byte}"
            );
        }
    }

    #[test]
    fn line_index_skips_a_byte_order_mark() {
        let index = LineIndex::new("\u{feff}ab\ncd");
        assert_eq!(index.pos(0), SourcePos { line: 1, col: 1 });
        assert_eq!(index.pos(3), SourcePos { line: 1, col: 1 });
        assert_eq!(index.pos(4), SourcePos { line: 1, col: 2 });
        assert_eq!(index.pos(7), SourcePos { line: 2, col: 2 });
        assert_eq!(index.end(), SourcePos { line: 2, col: 3 });
    }

    #[test]
    fn byte_counts_for_people() {
        assert_eq!(bytes_text(0x1000), "0x1000 bytes (4 KiB)");
        assert_eq!(bytes_text(0x1001), "0x1001 bytes (about 4 KiB)");
        assert_eq!(bytes_text(12), "0xc bytes");
    }
}
