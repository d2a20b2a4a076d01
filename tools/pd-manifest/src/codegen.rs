//! The typed config of a program, as Rust source: one struct per role kind,
//! a field per role, and `load()`, which decodes the block system-builder
//! filled in. The manifest itself is embedded in the image too, so the
//! builder reads what the program was compiled against, never a newer copy
//! of the file.

use std::fmt::Write;

use crate::encode::{item_words, layout_hash, total_words};
use crate::manifest::{Count, Kind, Program, RegionKind, Role, Spec};

/// The embedded manifest: this prefix, the manifest's path, NUL, the
/// program's name, NUL, the manifest's text.
pub const EMBED_MAGIC: &[u8] = b"DINGO-MANIFEST-1\0";
/// The symbols the generated code defines.
pub const CONFIG_SYMBOL: &str = "__dingo_config";
pub const MANIFEST_SYMBOL: &str = "__dingo_manifest";

/// The bytes of the embedded manifest.
pub fn embedded(path: &str, program: &str, text: &str) -> Vec<u8> {
    let mut b = EMBED_MAGIC.to_vec();
    for part in [path, program] {
        b.extend_from_slice(part.as_bytes());
        b.push(0);
    }
    b.extend_from_slice(text.as_bytes());
    b
}

/// Splits embedded manifest bytes into (path, program, text).
pub fn split_embedded(bytes: &[u8]) -> Option<(&str, &str, &str)> {
    let rest = bytes.strip_prefix(EMBED_MAGIC)?;
    let mut parts = rest.splitn(3, |&b| b == 0);
    let path = std::str::from_utf8(parts.next()?).ok()?;
    let program = std::str::from_utf8(parts.next()?).ok()?;
    let text = std::str::from_utf8(parts.next()?).ok()?;
    Some((path, program, text))
}

fn struct_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Regions => "Regions",
        Kind::Irqs => "Irqs",
        Kind::Channels => "Channels",
        Kind::IoPorts => "IoPorts",
        Kind::Ports => "Ports",
        Kind::Pci => "Pci",
        Kind::PciService => "PciService",
        Kind::Params => "Params",
    }
}

/// The Rust type of one item, and the Reader call that decodes it.
fn item(role: &Role) -> (String, String) {
    let (ty, call) = match &role.spec {
        Spec::Region {
            kind: RegionKind::Shared,
            writable,
            ..
        } => ("SharedRegion", format!("shared_region({writable})")),
        Spec::Region {
            kind: RegionKind::Device,
            ..
        } => ("DeviceRegion", "device_region()".into()),
        Spec::Region {
            kind: RegionKind::Dma { address_bits },
            ..
        } => ("DmaRegion", format!("dma_region({address_bits})")),
        Spec::Irq => ("Irq", "irq()".into()),
        Spec::Channel { .. } => ("Channel", "channel()".into()),
        Spec::IoPort { .. } => ("IoPorts", "ioports()".into()),
        Spec::Port { .. } => ("PortConfig", format!("port({:?})", role.name)),
        Spec::Pci => ("PciFunction", "pci()".into()),
        Spec::PciService => ("PciClient", "pci_client()".into()),
        Spec::Param { ty, .. } => {
            return (ty.rust().into(), format!("r.param_{}()", ty.rust()));
        }
    };
    (format!("::pd_config::{ty}"), format!("r.{call}"))
}

fn field(role: &Role) -> (String, String) {
    let (ty, call) = item(role);
    let words = item_words(&role.spec);
    match role.count {
        Count::One => (ty, call),
        Count::Optional => (
            format!("Option<{ty}>"),
            format!("r.optional({words}, |r| {call})"),
        ),
        Count::List { max } => (
            format!("::pd_config::List<{ty}, {max}>"),
            format!("r.list({words}, |r| {call})"),
        ),
    }
}

fn doc(role: &Role) -> String {
    let what = match &role.spec {
        Spec::Region {
            kind,
            writable,
            min_size,
        } => {
            let kind = match kind {
                RegionKind::Shared => "memory region".to_string(),
                RegionKind::Device => "device memory (uncached, at its phys_addr)".to_string(),
                RegionKind::Dma { address_bits } => {
                    format!("DMA memory for a {address_bits}-bit device")
                }
            };
            let perms = if *writable { "read-write" } else { "read-only" };
            format!("{kind}, {perms}, at least {min_size:#x} bytes")
        }
        Spec::Irq => "an interrupt".into(),
        Spec::Channel { notify, pp } => format!(
            "a channel end{}{}",
            if *notify { "; this PD notifies" } else { "" },
            if *pp { "; this PD calls the peer" } else { "" }
        ),
        Spec::IoPort { min_size } => format!("an I/O port range of at least {min_size} ports"),
        Spec::Port {
            protocol,
            side,
            data,
        } => format!(
            "the {} end of a {protocol} port (data area at least {data:#x} bytes)",
            side.name()
        ),
        Spec::Pci => "a PCI function this PD drives".into(),
        Spec::PciService => "a driver this PD serves PCI configuration space to".into(),
        Spec::Param { ty, default } => match default {
            Some(d) => format!("a {} parameter (default {d})", ty.rust()),
            None => format!("a {} parameter", ty.rust()),
        },
    };
    let count = match role.count {
        Count::One => String::new(),
        Count::Optional => " (optional)".into(),
        Count::List { max } => format!(" (a list of up to {max})"),
    };
    format!("`{}`: {what}{count}.", role.name)
}

fn byte_literal(bytes: &[u8]) -> String {
    let mut s = String::from("b\"");
    for &b in bytes {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            0x20..=0x7e => s.push(b as char),
            _ => write!(s, "\\x{b:02x}").unwrap(),
        }
    }
    s.push('"');
    s
}

/// The generated module for `program`, whose manifest is `text` at `path`.
pub fn rust(program: &Program, path: &str, text: &str) -> String {
    let mut o = String::new();
    let w = &mut o;
    writeln!(
        w,
        "// Generated by pd-manifest from {path}, program `{}`. Do not edit: change\n\
         // the manifest. system-builder fills the values in for every instance.\n",
        program.name
    )
    .unwrap();
    let kinds: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| program.roles_of(*k).next().is_some())
        .collect();

    writeln!(
        w,
        "/// What program `{}` was given by the system description: one\n\
         /// instance's values, checked against the manifest by system-builder.\n\
         #[derive(Clone, Debug)]\npub struct Config {{\n    \
         /// This PD's name in system.xml.\n    pub name: ::pd_config::Name,",
        program.name
    )
    .unwrap();
    for k in &kinds {
        writeln!(w, "    pub {}: {},", k.table(), struct_name(*k)).unwrap();
    }
    writeln!(w, "}}\n").unwrap();

    for k in &kinds {
        writeln!(
            w,
            "/// The `{}` roles of the manifest.\n#[derive(Clone, Debug)]\npub struct {} {{",
            k.table(),
            struct_name(*k)
        )
        .unwrap();
        for r in program.roles_of(*k) {
            let (ty, _) = field(r);
            writeln!(w, "    /// {}\n    pub {}: {ty},", doc(r), r.name).unwrap();
        }
        writeln!(w, "}}\n").unwrap();
    }

    let sizes: Vec<(&Role, u64)> = program
        .roles_of(Kind::Regions)
        .filter_map(|r| match r.spec {
            Spec::Region { min_size, .. } if min_size > 0 => Some((r, min_size)),
            _ => None,
        })
        .collect();
    if !sizes.is_empty() {
        writeln!(w, "impl Regions {{").unwrap();
        for (r, size) in sizes {
            writeln!(
                w,
                "    /// The least size of `{}` (system-builder checked it).\n    \
                 pub const {}_MIN_SIZE: usize = {size:#x};",
                r.name,
                r.name.to_uppercase()
            )
            .unwrap();
        }
        writeln!(w, "}}\n").unwrap();
    }

    let embed = embedded(path, &program.name, text);
    writeln!(
        w,
        "const PROGRAM: &str = {:?};\nconst LAYOUT_HASH: u64 = {:#018x};\nconst WORDS: usize = {};\n\n\
         #[unsafe(no_mangle)]\n#[used]\nstatic __dingo_config: ::pd_config::Blob<WORDS> = ::pd_config::Blob::new();\n\n\
         /// The manifest, for system-builder to read out of the image.\n\
         #[unsafe(no_mangle)]\n#[used]\nstatic __dingo_manifest: [u8; {}] = *{};\n",
        program.name,
        layout_hash(program),
        total_words(program),
        embed.len(),
        byte_literal(&embed)
    )
    .unwrap();

    writeln!(
        w,
        "/// Decodes this instance's config; call it once, at start-up.\n\
         pub fn load() -> Config {{\n    \
         // Keeps the embedded manifest in the image for system-builder.\n    \
         ::core::hint::black_box(&__dingo_manifest);\n    \
         let mut r = ::pd_config::Reader::new(&__dingo_config, LAYOUT_HASH, PROGRAM);\n    \
         let config = Config {{\n        name: r.name(),"
    )
    .unwrap();
    for k in &kinds {
        writeln!(w, "        {}: {} {{", k.table(), struct_name(*k)).unwrap();
        for r in program.roles_of(*k) {
            let (_, call) = field(r);
            writeln!(w, "            {}: {call},", r.name).unwrap();
        }
        writeln!(w, "        }},").unwrap();
    }
    writeln!(w, "    }};\n    r.finish();\n    config\n}}").unwrap();
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse;

    #[test]
    fn the_embedded_manifest_round_trips() {
        let b = embedded("pds/x/pd.toml", "x", "[program.x]\n");
        assert_eq!(
            split_embedded(&b),
            Some(("pds/x/pd.toml", "x", "[program.x]\n"))
        );
        assert_eq!(split_embedded(b"something else"), None);
    }

    #[test]
    fn generated_code_names_every_role_with_its_type() {
        let text = r#"
[program.t.regions]
hpet = { kind = "device", min_size = 0x1000 }
results = { perms = "r", max = 3 }
[program.t.irqs]
hpet = {}
[program.t.ports]
clients = { protocol = "Timer", side = "provider", max = 16 }
[program.t.params]
index = { type = "u8" }
"#;
        let m = parse("pd.toml", text).unwrap();
        let code = rust(&m.programs["t"], "pd.toml", text);
        for needle in [
            "pub hpet: ::pd_config::DeviceRegion,",
            "pub results: ::pd_config::List<::pd_config::SharedRegion, 3>,",
            "pub hpet: ::pd_config::Irq,",
            "pub clients: ::pd_config::List<::pd_config::PortConfig, 16>,",
            "pub index: u8,",
            "results: r.list(3, |r| r.shared_region(false)),",
            "pub const HPET_MIN_SIZE: usize = 0x1000;",
            "static __dingo_config: ::pd_config::Blob<WORDS>",
        ] {
            assert!(code.contains(needle), "missing {needle:?} in\n{code}");
        }
    }
}
