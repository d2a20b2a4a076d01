//! The builder's side of a config block: a program's layout, and its
//! values as words, in the order [`pd_config::Reader`] reads them.

use pd_config::layout::*;

use crate::manifest::{Count, Kind, Program, RegionKind, Role, Side, Spec};

/// Words one item of `spec` takes.
pub fn item_words(spec: &Spec) -> usize {
    match spec {
        Spec::Region { .. } => REGION_WORDS,
        Spec::Irq => IRQ_WORDS,
        Spec::Channel { .. } => CHANNEL_WORDS,
        Spec::IoPort { .. } => IOPORT_WORDS,
        Spec::Port { .. } => PORT_WORDS,
        Spec::Pci => PCI_WORDS,
        Spec::PciService => PCI_CLIENT_WORDS,
        Spec::Param { .. } => PARAM_WORDS,
    }
}

/// Words a role takes, whatever it is filled with.
pub fn role_words(role: &Role) -> usize {
    let item = item_words(&role.spec);
    match role.count {
        Count::One => item,
        Count::Optional => 1 + item,
        Count::List { max } => 1 + max as usize * item,
    }
}

/// Words of the program's whole config block.
pub fn total_words(program: &Program) -> usize {
    HEADER_WORDS + STRING_WORDS + program.roles.iter().map(role_words).sum::<usize>()
}

/// A hash of everything the layout depends on (FNV-1a over a canonical
/// description), so a block written for one layout is never read as
/// another.
pub fn layout_hash(program: &Program) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |s: &str| {
        for b in s.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(&program.name);
    for r in &program.roles {
        eat(&format!(
            "{:?} {} {:?} {:?}",
            r.kind, r.name, r.count, r.spec
        ));
    }
    h
}

/// A word of the block: known at build time, or the physical address of a
/// region that the monitor allocates at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Word {
    Value(u64),
    /// The physical address of memory region `mr` (the builder's index).
    RegionPaddr(usize),
}

/// A region's physical address as the config holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paddr {
    None,
    Known(u64),
    /// Allocated by the monitor: memory region `mr`.
    Region(usize),
}

/// The value of one item of a role, resolved from the system description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Region {
        vaddr: u64,
        size: u64,
        paddr: Paddr,
    },
    Irq {
        id: u8,
        /// IOAPIC: ioapic << 8 | pin; MSI: bdf << 48 | handle.
        at: u64,
        flags: u64,
        vector: u8,
    },
    Channel {
        id: u8,
    },
    IoPort {
        id: u8,
        base: u16,
        size: u16,
    },
    Port {
        vaddr: u64,
        size: u64,
        channel: u8,
        slots: u32,
        side: Side,
        protocol: String,
        peer: String,
        peer_restarts: bool,
    },
    Pci {
        channel: u8,
        bdf: u16,
    },
    PciClient {
        channel: u8,
        bdf: u16,
        /// Per BAR: (physical address, size) where placed, (0, 0) if not.
        bars: [(u64, u64); 6],
        pd: String,
    },
    Param(u64),
}

fn matches(spec: &Spec, item: &Item) -> bool {
    matches!(
        (spec, item),
        (Spec::Region { .. }, Item::Region { .. })
            | (Spec::Irq, Item::Irq { .. })
            | (Spec::Channel { .. }, Item::Channel { .. })
            | (Spec::IoPort { .. }, Item::IoPort { .. })
            | (Spec::Port { .. }, Item::Port { .. })
            | (Spec::Pci, Item::Pci { .. })
            | (Spec::PciService, Item::PciClient { .. })
            | (Spec::Param { .. }, Item::Param(_))
    )
}

fn string(out: &mut Vec<Word>, s: &str) -> Result<(), String> {
    if s.len() > MAX_STRING {
        return Err(format!(
            "the name '{s}' is {} bytes; a config holds names of at most {MAX_STRING}",
            s.len()
        ));
    }
    out.push(Word::Value(s.len() as u64));
    let mut bytes = [0u8; MAX_STRING];
    bytes[..s.len()].copy_from_slice(s.as_bytes());
    for chunk in bytes.chunks(8) {
        out.push(Word::Value(u64::from_le_bytes(chunk.try_into().unwrap())));
    }
    Ok(())
}

fn item(out: &mut Vec<Word>, item: &Item) -> Result<(), String> {
    let v = |x: u64| Word::Value(x);
    match item {
        Item::Region { vaddr, size, paddr } => {
            out.extend([v(*vaddr), v(*size)]);
            out.push(match *paddr {
                Paddr::None => v(0),
                Paddr::Known(p) => v(p),
                Paddr::Region(mr) => Word::RegionPaddr(mr),
            });
        }
        Item::Irq {
            id,
            at,
            flags,
            vector,
        } => out.extend([v((*id).into()), v(*at), v(*flags), v((*vector).into())]),
        Item::Channel { id } => out.push(v((*id).into())),
        Item::IoPort { id, base, size } => {
            out.extend([v((*id).into()), v((*base).into()), v((*size).into())])
        }
        Item::Port {
            vaddr,
            size,
            channel,
            slots,
            side,
            protocol,
            peer,
            peer_restarts,
        } => {
            let side = match side {
                Side::Provider => SIDE_PROVIDER,
                Side::Client => SIDE_CLIENT,
            };
            out.extend([
                v(*vaddr),
                v(*size),
                v(0),
                v((*channel).into()),
                v((*slots).into()),
                v(side),
            ]);
            string(out, protocol)?;
            string(out, peer)?;
            out.push(v((*peer_restarts).into()));
        }
        Item::Pci { channel, bdf } => out.extend([v((*channel).into()), v((*bdf).into())]),
        Item::PciClient {
            channel,
            bdf,
            bars,
            pd,
        } => {
            out.extend([v((*channel).into()), v((*bdf).into())]);
            for (paddr, size) in bars {
                out.extend([v(*paddr), v(*size)]);
            }
            string(out, pd)?;
        }
        Item::Param(x) => out.push(v(*x)),
    }
    Ok(())
}

/// Encodes a program's config: `values[i]` fills `program.roles[i]`. The
/// resolver has already checked each value against its role; what is
/// checked here is only what the layout itself needs (counts, item kinds,
/// name lengths), so a resolver bug cannot write a block the PD misreads.
pub fn encode(program: &Program, pd_name: &str, values: &[Vec<Item>]) -> Result<Vec<Word>, String> {
    if values.len() != program.roles.len() {
        return Err(format!(
            "{} values for {} roles",
            values.len(),
            program.roles.len()
        ));
    }
    let total = total_words(program);
    let mut out = vec![
        Word::Value(MAGIC),
        Word::Value(layout_hash(program)),
        Word::Value(total as u64),
    ];
    string(&mut out, pd_name)?;
    for (role, items) in program.roles.iter().zip(values) {
        if let Some(bad) = items.iter().find(|i| !matches(&role.spec, i)) {
            return Err(format!("{} given {bad:?}", role.describe()));
        }
        let per = item_words(&role.spec);
        let start = out.len();
        match role.count {
            Count::One if items.len() == 1 => item(&mut out, &items[0])?,
            Count::Optional if items.len() <= 1 => {
                out.push(Word::Value(items.len() as u64));
                if let Some(i) = items.first() {
                    item(&mut out, i)?;
                }
                out.resize(start + 1 + per, Word::Value(0));
            }
            Count::List { max } if items.len() <= max as usize => {
                out.push(Word::Value(items.len() as u64));
                for i in items {
                    item(&mut out, i)?;
                }
                out.resize(start + 1 + max as usize * per, Word::Value(0));
            }
            _ => {
                return Err(format!(
                    "{} given {} values ({:?})",
                    role.describe(),
                    items.len(),
                    role.count
                ));
            }
        }
        debug_assert_eq!(out.len() - start, role_words(role));
    }
    debug_assert_eq!(out.len(), total);
    Ok(out)
}

/// Whether a region of `kind` is what the manifest calls a device region,
/// a DMA region or plain shared memory (for messages).
pub fn region_kind_name(kind: RegionKind) -> &'static str {
    match kind {
        RegionKind::Shared => "shared",
        RegionKind::Device => "device",
        RegionKind::Dma { .. } => "DMA",
    }
}

/// All the roles of `kind`, with their indices into the program's roles.
pub fn roles_with_index(program: &Program, kind: Kind) -> impl Iterator<Item = (usize, &Role)> {
    program
        .roles
        .iter()
        .enumerate()
        .filter(move |(_, r)| r.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse;
    use pd_config::{Bdf, Channel, IrqSource, Reader, Side as RtSide};

    const TEXT: &str = r#"
[program.p.regions]
mmio = { kind = "device" }
ring = { kind = "dma" }
[program.p.irqs]
dev = {}
[program.p.channels]
peers = { max = 4 }
spare = { optional = true }
[program.p.ports]
eth = { protocol = "EthernetController", side = "client" }
[program.p.pci]
nic = {}
[program.p.params]
index = { type = "u16" }
"#;

    fn values() -> Vec<Vec<Item>> {
        vec![
            vec![Item::Region {
                vaddr: 0x4000000,
                size: 0x1000,
                paddr: Paddr::Known(0xfebf1000),
            }],
            vec![Item::Region {
                vaddr: 0x5000000,
                size: 0x10000,
                paddr: Paddr::Region(3),
            }],
            vec![Item::Irq {
                id: 7,
                at: 11,
                flags: pd_config::layout::IRQ_LEVEL | pd_config::layout::IRQ_ACTIVE_LOW,
                vector: 12,
            }],
            vec![Item::Channel { id: 2 }, Item::Channel { id: 5 }],
            vec![],
            vec![Item::Port {
                vaddr: 0x6000000,
                size: 0x200000,
                channel: 0,
                slots: 32,
                side: Side::Client,
                protocol: "EthernetController".into(),
                peer: "rtl8139".into(),
                peer_restarts: true,
            }],
            vec![Item::Pci {
                channel: 9,
                bdf: Bdf {
                    bus: 0,
                    dev: 3,
                    func: 0,
                }
                .packed(),
            }],
            vec![Item::Param(513)],
        ]
    }

    #[test]
    fn what_the_builder_writes_the_pd_reads() {
        let m = parse("pd.toml", TEXT).unwrap();
        let p = &m.programs["p"];
        let words = encode(p, "net", &values()).unwrap();
        assert_eq!(words.len(), total_words(p));
        assert_eq!(words[HEADER_WORDS + STRING_WORDS + 5], Word::RegionPaddr(3));
        // The monitor would put the region's physical address there.
        let flat: Vec<u64> = words
            .iter()
            .map(|w| match w {
                Word::Value(v) => *v,
                Word::RegionPaddr(_) => 0x1234_0000,
            })
            .collect();
        let flat: &'static [u64] = Vec::leak(flat);
        let mut r = Reader::new(flat, layout_hash(p), "p");
        assert_eq!(r.name(), "net");
        assert_eq!(r.device_region().paddr, 0xfebf1000);
        let ring = r.dma_region(32);
        assert_eq!(
            (ring.vaddr, ring.size, ring.paddr),
            (0x5000000, 0x10000, 0x1234_0000)
        );
        let irq = r.irq();
        assert_eq!(irq.id, 7);
        assert!(matches!(
            irq.source,
            IrqSource::Ioapic {
                pin: 11,
                level: true,
                active_low: true,
                vector: 12,
                ..
            }
        ));
        let peers: pd_config::List<Channel, 4> = r.list(CHANNEL_WORDS, |r| r.channel());
        assert_eq!(peers.as_slice(), [Channel { id: 2 }, Channel { id: 5 }]);
        assert_eq!(r.optional(CHANNEL_WORDS, |r| r.channel()), None);
        let eth = r.port("eth");
        assert_eq!((eth.channel, eth.slots, eth.side), (0, 32, RtSide::Client));
        assert_eq!((eth.protocol, eth.peer), ("EthernetController", "rtl8139"));
        assert!(eth.peer_restarts);
        assert_eq!(r.pci().bdf.to_string(), "00:03.0");
        assert_eq!(r.param_u16(), 513);
        r.finish();
    }

    #[test]
    fn wrong_counts_and_long_names_are_refused() {
        let m = parse("pd.toml", TEXT).unwrap();
        let p = &m.programs["p"];
        let mut v = values();
        v[3] = (0..5).map(|id| Item::Channel { id }).collect();
        assert!(encode(p, "net", &v).unwrap_err().contains("given 5 values"));
        let long = "x".repeat(57);
        assert!(
            encode(p, &long, &values())
                .unwrap_err()
                .contains("at most 56")
        );
        let mut v = values();
        v[0] = vec![Item::Channel { id: 1 }];
        assert!(
            encode(p, "net", &v)
                .unwrap_err()
                .contains("region role 'mmio' given")
        );
    }

    #[test]
    fn the_layout_hash_follows_the_roles() {
        let a = parse("pd.toml", "[program.p.channels]\nx = {}\n").unwrap();
        let b = parse("pd.toml", "[program.p.channels]\nx = { max = 2 }\n").unwrap();
        let c = parse("pd.toml", "[program.p.channels]\ny = {}\n").unwrap();
        let h = |m: &crate::Manifest| layout_hash(&m.programs["p"]);
        assert_ne!(h(&a), h(&b));
        assert_ne!(h(&a), h(&c));
        assert_eq!(h(&a), h(&a.clone()));
    }
}
