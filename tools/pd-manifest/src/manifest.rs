//! The manifest of a PD crate (`pd.toml`): for each program (binary) of
//! the crate, the roles its code fills from the system description.
//!
//! ```toml
//! [program.timer.regions]
//! hpet = { kind = "device", perms = "rw", min_size = 0x1000 }
//! time_page = { perms = "rw", min_size = 0x1000 }
//!
//! [program.timer.irqs]
//! hpet = {}
//!
//! [program.timer.ports]
//! clients = { protocol = "Timer", side = "provider", max = 16 }
//! ```
//!
//! Role kinds (tables), each role a table of options:
//!
//! | table         | a role is                                   | options |
//! |---------------|---------------------------------------------|---------|
//! | `regions`     | a memory region mapped into the PD          | `kind` = `"shared"` (default), `"device"` (a `phys_addr` region mapped uncached: MMIO) or `"dma"` (RAM a device reads and writes: its physical address is filled in); `perms` = `"r"` or `"rw"` (default `"rw"`); `min_size`; for `dma`, `address_bits` (the device's DMA address width, default 32) |
//! | `irqs`        | an `<irq>` of the PD                        | |
//! | `channels`    | a channel end of the PD (by default the one to the PD named like the role, `_` read as `-`) | `notify` (this PD signals the peer; default true), `pp` (this PD calls the peer's `protected`; default false) |
//! | `ioports`     | an `<ioport>` range                         | `min_size` |
//! | `ports`       | one end of a Dingo port: a channel and a shared region | `protocol` (Tingu protocol name), `side` = `"provider"` or `"client"`, `data` (bytes the data area needs at least; default 0) |
//! | `pci`         | a PCI function this PD drives (through the PD that serves PCI configuration space) | |
//! | `pci_service` | the drivers this PD serves PCI configuration space to | |
//! | `params`      | a per-instance value                        | `type` = `"u8"`, `"u16"`, `"u32"`, `"u64"` or `"bool"`; `default` |
//!
//! Every role also takes `max = N` (a list of up to N, filled in the order
//! the system description gives) or `optional = true` (present or not).
//! Role names become Rust field names (`config.regions.hpet`): lower-case
//! identifiers, unique within their table.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::source::{Diag, Pos, Source, Table, integer};

/// The role kinds, in the order their fields are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Regions,
    Irqs,
    Channels,
    IoPorts,
    Ports,
    Pci,
    PciService,
    Params,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Regions,
        Kind::Irqs,
        Kind::Channels,
        Kind::IoPorts,
        Kind::Ports,
        Kind::Pci,
        Kind::PciService,
        Kind::Params,
    ];

    /// The manifest table (and the generated config's field) of this kind.
    pub const fn table(self) -> &'static str {
        match self {
            Kind::Regions => "regions",
            Kind::Irqs => "irqs",
            Kind::Channels => "channels",
            Kind::IoPorts => "ioports",
            Kind::Ports => "ports",
            Kind::Pci => "pci",
            Kind::PciService => "pci_service",
            Kind::Params => "params",
        }
    }

    /// Singular, for messages: "region role 'hpet'".
    pub const fn noun(self) -> &'static str {
        match self {
            Kind::Regions => "region",
            Kind::Irqs => "irq",
            Kind::Channels => "channel",
            Kind::IoPorts => "ioport",
            Kind::Ports => "port",
            Kind::Pci => "pci",
            Kind::PciService => "pci_service",
            Kind::Params => "param",
        }
    }
}

/// How many of a role a program takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Count {
    One,
    Optional,
    List { max: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegionKind {
    Shared,
    Device,
    Dma { address_bits: u8 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Provider,
    Client,
}

impl Side {
    pub const fn name(self) -> &'static str {
        match self {
            Side::Provider => "provider",
            Side::Client => "client",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamType {
    U8,
    U16,
    U32,
    U64,
    Bool,
}

impl ParamType {
    pub const fn rust(self) -> &'static str {
        match self {
            ParamType::U8 => "u8",
            ParamType::U16 => "u16",
            ParamType::U32 => "u32",
            ParamType::U64 => "u64",
            ParamType::Bool => "bool",
        }
    }

    /// Largest value of the type.
    pub const fn max(self) -> u64 {
        match self {
            ParamType::U8 => u8::MAX as u64,
            ParamType::U16 => u16::MAX as u64,
            ParamType::U32 => u32::MAX as u64,
            ParamType::U64 => u64::MAX,
            ParamType::Bool => 1,
        }
    }
}

/// What a role asks of the system description.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Spec {
    Region {
        kind: RegionKind,
        writable: bool,
        min_size: u64,
    },
    Irq,
    Channel {
        notify: bool,
        pp: bool,
    },
    IoPort {
        min_size: u64,
    },
    Port {
        protocol: String,
        side: Side,
        data: u64,
    },
    Pci,
    PciService,
    Param {
        ty: ParamType,
        default: Option<u64>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub kind: Kind,
    pub name: String,
    pub count: Count,
    pub spec: Spec,
    pub pos: Pos,
}

impl Role {
    /// "region role 'hpet' of program 'timer'" style naming, without the
    /// program.
    pub fn describe(&self) -> String {
        format!("{} role '{}'", self.kind.noun(), self.name)
    }
}

/// One program (binary) of a PD crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub name: String,
    /// The manifest file, as diagnostics name it.
    pub file: String,
    /// Roles in layout order: by kind, then by name.
    pub roles: Vec<Role>,
    pub pos: Pos,
}

impl Program {
    pub fn roles_of(&self, kind: Kind) -> impl Iterator<Item = &Role> {
        self.roles.iter().filter(move |r| r.kind == kind)
    }

    pub fn role(&self, kind: Kind, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.kind == kind && r.name == name)
    }
}

/// A parsed `pd.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub programs: BTreeMap<String, Program>,
}

const RUST_KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
    "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true", "type", "unsafe",
    "use", "where", "while", "abstract", "become", "box", "do", "final", "macro", "override",
    "priv", "try", "typeof", "unsized", "virtual", "yield",
];

/// Whether `name` can be a role (a Rust field name of the generated config).
pub fn is_role_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && name != "_"
        && !RUST_KEYWORDS.contains(&name)
}

/// The largest `max` a list role may have (a config is a fixed-size block
/// in the program image).
pub const MAX_LIST: u64 = 64;

/// Parses a manifest; `file` is what diagnostics call it.
pub fn parse(file: &str, text: &str) -> Result<Manifest, Vec<Diag>> {
    let src = Source::new(file, text);
    let doc = src.parse().map_err(|e| vec![e])?;
    let top = Table::new(&src, doc.get_ref(), 0..0, "the manifest");
    let mut d = Vec::new();
    top.check_keys(&["program"], &mut d);
    let mut programs = BTreeMap::new();
    match top.opt_table("program", &mut d) {
        None if d.is_empty() => d.push(src.diag(
            &(0..0),
            "the manifest declares no program",
            "a [program.<binary name>] table for each PD binary of the crate",
        )),
        None => {}
        Some(progs) => {
            for (name, span, v) in progs.entries() {
                let Some(t) = v.get_ref().as_table() else {
                    d.push(src.diag(
                        &v.span(),
                        format!("program '{name}' is not a table"),
                        format!("[program.{name}] with role tables"),
                    ));
                    continue;
                };
                let t = Table::new(&src, t, span.clone(), format!("[program.{name}]"));
                if let Some(p) = program(&src, name, span, &t, &mut d) {
                    programs.insert(name.to_string(), p);
                }
            }
        }
    }
    if d.is_empty() {
        Ok(Manifest { programs })
    } else {
        d.sort_by_key(|x| x.pos);
        Err(d)
    }
}

fn program(
    src: &Source<'_>,
    name: &str,
    span: Range<usize>,
    t: &Table<'_, '_>,
    d: &mut Vec<Diag>,
) -> Option<Program> {
    let tables: Vec<&str> = Kind::ALL.iter().map(|k| k.table()).collect();
    t.check_keys(&tables, d);
    let mut roles = Vec::new();
    for kind in Kind::ALL {
        let Some(rt) = t.opt_table(kind.table(), d) else {
            continue;
        };
        for (role, rspan, v) in rt.entries() {
            let what = format!("{} role '{role}'", kind.noun());
            if !is_role_name(role) {
                d.push(src.diag(
                    &rspan,
                    format!("{what} is not a usable name"),
                    "a lower-case Rust identifier that is not a keyword (it names a field of the generated config)",
                ));
                continue;
            }
            let Some(opts) = v.get_ref().as_table() else {
                d.push(src.diag(
                    &v.span(),
                    format!("{what} is not a table"),
                    format!("{role} = {{ ... }}"),
                ));
                continue;
            };
            let opts = Table::new(src, opts, v.span(), what);
            if let Some(r) = role_of(src, kind, role, rspan, &opts, d) {
                roles.push(r);
            }
        }
    }
    Some(Program {
        name: name.to_string(),
        file: src.file.to_string(),
        roles,
        pos: src.pos(span.start),
    })
}

fn role_of(
    src: &Source<'_>,
    kind: Kind,
    name: &str,
    span: Range<usize>,
    t: &Table<'_, '_>,
    d: &mut Vec<Diag>,
) -> Option<Role> {
    let before = d.len();
    let mut keys = vec!["max", "optional"];
    keys.extend_from_slice(match kind {
        Kind::Regions => &["kind", "perms", "min_size", "address_bits"][..],
        Kind::Irqs | Kind::Pci | Kind::PciService => &[],
        Kind::Channels => &["notify", "pp"],
        Kind::IoPorts => &["min_size"],
        Kind::Ports => &["protocol", "side", "data"],
        Kind::Params => &["type", "default"],
    });
    t.check_keys(&keys, d);

    let max = t.opt_u64("max", d);
    let optional = t.opt_bool("optional", d);
    let count = match (max, optional) {
        (Some((_, s)), Some((true, _))) => {
            d.push(src.diag(
                &s,
                format!("{} is both a list (max) and optional", t.what),
                "either max = N or optional = true",
            ));
            Count::One
        }
        (Some((m, s)), _) => {
            if m == 0 || m > MAX_LIST {
                d.push(src.diag(
                    &s,
                    format!("{} has max = {m}", t.what),
                    format!("a list length in 1..={MAX_LIST}"),
                ));
            }
            Count::List { max: m as u32 }
        }
        (None, Some((true, _))) => Count::Optional,
        (None, _) => Count::One,
    };

    let spec = match kind {
        Kind::Regions => {
            let rkind = match t.opt_str("kind", d) {
                None | Some(("shared", _)) => RegionKind::Shared,
                Some(("device", _)) => RegionKind::Device,
                Some(("dma", _)) => RegionKind::Dma { address_bits: 32 },
                Some((other, s)) => {
                    d.push(src.diag(
                        &s,
                        format!("{} has kind '{other}'", t.what),
                        "\"shared\", \"device\" or \"dma\"",
                    ));
                    RegionKind::Shared
                }
            };
            let rkind = match (rkind, t.opt_u64("address_bits", d)) {
                (RegionKind::Dma { .. }, Some((bits, s))) => {
                    if !(12..=64).contains(&bits) {
                        d.push(src.diag(
                            &s,
                            format!("{} has address_bits = {bits}", t.what),
                            "a DMA address width in 12..=64",
                        ));
                    }
                    RegionKind::Dma {
                        address_bits: bits as u8,
                    }
                }
                (_, Some((_, s))) => {
                    d.push(src.diag(
                        &s,
                        format!("{} has address_bits but is not a DMA region", t.what),
                        "address_bits only with kind = \"dma\"",
                    ));
                    rkind
                }
                (k, None) => k,
            };
            let writable = match t.opt_str("perms", d) {
                None | Some(("rw", _)) => true,
                Some(("r", _)) => false,
                Some((other, s)) => {
                    d.push(src.diag(
                        &s,
                        format!("{} has perms '{other}'", t.what),
                        "\"r\" or \"rw\"",
                    ));
                    true
                }
            };
            if matches!(rkind, RegionKind::Dma { .. }) && !writable {
                d.push(src.diag(
                    &t.span,
                    format!("{} is a DMA region but read-only", t.what),
                    "perms = \"rw\" for DMA regions (a device writes them)",
                ));
            }
            Spec::Region {
                kind: rkind,
                writable,
                min_size: t.opt_u64("min_size", d).map_or(0, |v| v.0),
            }
        }
        Kind::Irqs => Spec::Irq,
        Kind::Channels => Spec::Channel {
            notify: t.opt_bool("notify", d).is_none_or(|v| v.0),
            pp: t.opt_bool("pp", d).is_some_and(|v| v.0),
        },
        Kind::IoPorts => Spec::IoPort {
            min_size: t.opt_u64("min_size", d).map_or(0, |v| v.0),
        },
        Kind::Ports => {
            let protocol = t.str("protocol", "\"<Tingu protocol name>\"", d);
            let side = match t.str("side", "\"provider\" or \"client\"", d) {
                Some(("provider", _)) => Side::Provider,
                Some(("client", _)) => Side::Client,
                Some((other, s)) => {
                    d.push(src.diag(
                        &s,
                        format!("{} has side '{other}'", t.what),
                        "\"provider\" or \"client\"",
                    ));
                    Side::Provider
                }
                None => Side::Provider,
            };
            if let Some((p, s)) = &protocol
                && !p.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            {
                d.push(src.diag(
                    s,
                    format!("{} names protocol '{p}'", t.what),
                    "a Tingu protocol name (it starts with a capital letter)",
                ));
            }
            Spec::Port {
                protocol: protocol.map_or_else(String::new, |p| p.0.to_string()),
                side,
                data: t.opt_u64("data", d).map_or(0, |v| v.0),
            }
        }
        Kind::Pci => Spec::Pci,
        Kind::PciService => Spec::PciService,
        Kind::Params => {
            let ty = match t.str("type", "\"u8\", \"u16\", \"u32\", \"u64\" or \"bool\"", d) {
                Some(("u8", _)) => ParamType::U8,
                Some(("u16", _)) => ParamType::U16,
                Some(("u32", _)) => ParamType::U32,
                Some(("u64", _)) | None => ParamType::U64,
                Some(("bool", _)) => ParamType::Bool,
                Some((other, s)) => {
                    d.push(src.diag(
                        &s,
                        format!("{} has type '{other}'", t.what),
                        "\"u8\", \"u16\", \"u32\", \"u64\" or \"bool\"",
                    ));
                    ParamType::U64
                }
            };
            let default = t
                .get("default")
                .and_then(|v| match param_value(ty, v.get_ref()) {
                    Some(x) => Some(x),
                    None => {
                        d.push(src.diag(
                            &v.span(),
                            format!("{} has a default that is not a {}", t.what, ty.rust()),
                            format!("a {} value", ty.rust()),
                        ));
                        None
                    }
                });
            Spec::Param { ty, default }
        }
    };
    if matches!(spec, Spec::Param { .. }) && count != Count::One {
        d.push(src.diag(
            &span,
            format!("{} is a list or optional", t.what),
            "a single value (params take a default instead)",
        ));
    }
    (d.len() == before).then(|| Role {
        kind,
        name: name.to_string(),
        count,
        spec,
        pos: src.pos(span.start),
    })
}

/// A parameter's value in its type, as a config word.
pub fn param_value(ty: ParamType, v: &toml::de::DeValue<'_>) -> Option<u64> {
    match ty {
        ParamType::Bool => v.as_bool().map(u64::from),
        _ => integer(v).filter(|&n| n <= ty.max()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        parse("pd.toml", text)
            .unwrap_err()
            .iter()
            .map(|d| d.to_string())
            .collect()
    }

    #[test]
    fn a_full_manifest_parses_in_layout_order() {
        let m = parse(
            "pd.toml",
            r#"
[program.timer.ports]
clients = { protocol = "Timer", side = "provider", max = 16 }
[program.timer.regions]
time_page = { min_size = 0x1000 }
hpet = { kind = "device", min_size = 4096 }
ring = { kind = "dma", address_bits = 32 }
[program.timer.irqs]
hpet_irq = {}
[program.timer.params]
index = { type = "u8", default = 3 }
"#,
        )
        .unwrap();
        let p = &m.programs["timer"];
        let names: Vec<&str> = p.roles.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["hpet", "ring", "time_page", "hpet_irq", "clients", "index"]
        );
        assert_eq!(
            p.role(Kind::Ports, "clients").unwrap().count,
            Count::List { max: 16 }
        );
        assert_eq!(
            p.role(Kind::Regions, "hpet").unwrap().spec,
            Spec::Region {
                kind: RegionKind::Device,
                writable: true,
                min_size: 4096
            }
        );
        assert_eq!(
            p.role(Kind::Params, "index").unwrap().spec,
            Spec::Param {
                ty: ParamType::U8,
                default: Some(3)
            }
        );
        assert_eq!(
            p.role(Kind::Regions, "hpet").unwrap().pos,
            Pos { line: 6, col: 1 }
        );
    }

    #[test]
    fn bad_roles_are_located() {
        assert_eq!(
            errors("[program.a.regions]\nself = {}\n"),
            [
                "pd.toml:2:1: error: region role 'self' is not a usable name; expected a lower-case Rust identifier that is not a keyword (it names a field of the generated config)"
            ]
        );
        assert_eq!(
            errors("[program.a.ports]\np = { side = \"both\" }\n"),
            [
                "pd.toml:2:5: error: port role 'p' has no 'protocol'; expected protocol = \"<Tingu protocol name>\"",
                "pd.toml:2:14: error: port role 'p' has side 'both'; expected \"provider\" or \"client\"",
            ]
        );
        assert_eq!(
            errors("[program.a.regions]\nr = { kind = \"dma\", perms = \"r\", max = 0 }\n"),
            [
                "pd.toml:2:5: error: region role 'r' is a DMA region but read-only; expected perms = \"rw\" for DMA regions (a device writes them)",
                "pd.toml:2:40: error: region role 'r' has max = 0; expected a list length in 1..=64",
            ]
        );
        assert_eq!(
            errors("[program.a.params]\nn = { type = \"u8\", default = 300 }\n"),
            [
                "pd.toml:2:30: error: param role 'n' has a default that is not a u8; expected a u8 value"
            ]
        );
        assert_eq!(
            errors("[program.a.lights]\n"),
            [
                "pd.toml:1:12: error: unknown key 'lights' in [program.a]; expected one of: regions, irqs, channels, ioports, ports, pci, pci_service, params"
            ]
        );
        assert_eq!(
            errors("# nothing\n"),
            [
                "pd.toml:1:1: error: the manifest declares no program; expected a [program.<binary name>] table for each PD binary of the crate"
            ]
        );
    }

    #[test]
    fn role_names_are_rust_fields() {
        assert!(is_role_name("time_page"));
        assert!(is_role_name("_private"));
        for bad in ["", "_", "Hpet", "9lives", "a-b", "type", "self"] {
            assert!(!is_role_name(bad), "{bad}");
        }
    }
}
