//! The layout of a config block: what system-builder writes and
//! [`Reader`](crate::Reader) reads, word by word (little-endian u64).
//!
//! ```text
//! header   MAGIC, layout hash, total words
//! name     the PD's name (a string: length word + 7 words of bytes)
//! roles    by kind (regions, irqs, channels, ioports, ports, pci,
//!          pci_service, params), then by name; each role one item, or a
//!          presence word + one item (optional), or a count word + `max`
//!          items (list)
//! ```
//!
//! Items, in words:
//!
//! | item        | words |
//! |-------------|-------|
//! | region      | vaddr, size, paddr (0 where none) |
//! | irq         | channel id, where (IOAPIC: ioapic << 8 \| pin; MSI: bdf << 48 \| handle; GIC: the interrupt ID), flags ([`IRQ_LEVEL`], [`IRQ_ACTIVE_LOW`], [`IRQ_MSI`], [`IRQ_GIC`]), vector |
//! | channel     | channel id |
//! | ioport      | id, base, size |
//! | port        | vaddr, size, 0, channel id, slots, side, protocol (string), peer PD (string) |
//! | pci         | channel id, bdf (bus << 8 \| dev << 3 \| func) |
//! | pci client  | channel id, bdf, 6 × (BAR address, size: where system.xml places it; size 0 where it does not), PD name (string) |
//! | param       | value |

/// `b"DINGOCFG"`: a block the builder filled.
pub const MAGIC: u64 = u64::from_le_bytes(*b"DINGOCFG");
pub const HEADER_WORDS: usize = 3;
/// A string: a length word and 56 bytes.
pub const STRING_WORDS: usize = 8;
pub const MAX_STRING: usize = (STRING_WORDS - 1) * 8;
pub const MAX_CHANNEL_ID: u8 = 61;

pub const REGION_WORDS: usize = 3;
pub const IRQ_WORDS: usize = 4;
pub const CHANNEL_WORDS: usize = 1;
pub const IOPORT_WORDS: usize = 3;
pub const PORT_WORDS: usize = REGION_WORDS + 4 + 2 * STRING_WORDS;
pub const PCI_WORDS: usize = 2;
/// A pci client: channel, bdf, six BAR placements (address, size; size 0
/// for none) and the driver's name.
pub const PCI_CLIENT_WORDS: usize = 2 + 2 * 6 + STRING_WORDS;
pub const PARAM_WORDS: usize = 1;

/// IRQ flags.
pub const IRQ_LEVEL: u64 = 1;
pub const IRQ_ACTIVE_LOW: u64 = 2;
pub const IRQ_MSI: u64 = 4;
/// An ARM GIC interrupt.
pub const IRQ_GIC: u64 = 8;

/// Port sides.
pub const SIDE_PROVIDER: u64 = 0;
pub const SIDE_CLIENT: u64 = 1;

/// Slots per ring when the wiring file does not say.
pub const DEFAULT_SLOTS: u32 = 16;
