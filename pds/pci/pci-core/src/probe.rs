//! What a function is: its identity, its BARs (decoded and sized), its
//! interrupt and its capability list. Everything read here comes from the
//! device and is checked before use: a BAR whose size is not a power of
//! two or whose address is not aligned to it, a capability pointer into
//! the header or a capability list that loops is reported, never followed.

use core::fmt;

use hwio::{Bus, Registers};

use crate::config::{ConfigSpace, Function};
use crate::regs::{self, Bar as BarReg, Command, HeaderType, Status};

/// A function's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Info {
    pub vendor: u16,
    pub device: u16,
    pub class: u8,
    pub subclass: u8,
    pub prog_if: u8,
    pub revision: u8,
    /// The header layout: 0 for a device (the only kind drivers get).
    pub layout: u8,
}

impl Info {
    /// A short name of the class, for logs.
    pub fn class_name(&self) -> &'static str {
        match (self.class, self.subclass) {
            (0x01, _) => "storage",
            (0x02, _) => "network",
            (0x03, _) => "display",
            (0x06, 0x00) => "host bridge",
            (0x06, 0x01) => "ISA bridge",
            (0x06, _) => "bridge",
            (0x0c, 0x03) => "USB",
            (0x0c, _) => "serial bus",
            _ => "device",
        }
    }
}

impl fmt::Display for Info {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:04x} ({}, class {:02x}.{:02x}.{:02x}, revision {:#04x})",
            self.vendor,
            self.device,
            self.class_name(),
            self.class,
            self.subclass,
            self.prog_if,
            self.revision
        )
    }
}

/// A decoded base address register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar {
    Io {
        port: u16,
        size: u16,
    },
    Mem {
        addr: u64,
        size: u64,
        prefetchable: bool,
        is64: bool,
    },
}

impl fmt::Display for Bar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Bar::Io { port, size } => write!(f, "I/O ports {port:#x}, {size:#x} ports"),
            Bar::Mem {
                addr,
                size,
                prefetchable,
                is64,
            } => write!(
                f,
                "memory at {addr:#x}, {size:#x} bytes{}{}",
                if is64 { ", 64-bit" } else { "" },
                if prefetchable { ", prefetchable" } else { "" }
            ),
        }
    }
}

/// A BAR the device reported in a form no real decoder has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MalformedBar {
    pub index: u8,
    pub value: u32,
    pub mask: u32,
}

/// The interrupt a function raises: the line firmware routed it to (the
/// IOAPIC pin on a PC for lines below 16) and its INTx pin (1 = INTA).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interrupt {
    pub line: u8,
    pub pin: Option<u8>,
}

/// A capability structure: its id and where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability {
    pub id: u8,
    pub offset: u8,
}

/// Most capabilities followed: the device-specific area holds at most 48
/// dword-aligned structures, so more means a loop.
pub const MAX_CAPABILITIES: usize = 48;

/// The function's identity, or `None` if no device answers there.
pub fn info<C: ConfigSpace + ?Sized>(f: &mut Function<'_, C>) -> Option<Info> {
    let vendor = f.get(regs::VENDOR_ID);
    if vendor == regs::NO_DEVICE || vendor == 0 {
        return None;
    }
    Some(Info {
        vendor,
        device: f.get(regs::DEVICE_ID),
        class: f.get(regs::CLASS),
        subclass: f.get(regs::SUBCLASS),
        prog_if: f.get(regs::PROG_IF),
        revision: f.get(regs::REVISION),
        layout: f.read(regs::HEADER_TYPE).read(HeaderType::LAYOUT),
    })
}

/// Where each memory BAR of a function decodes now, read without sizing
/// (nothing is written, so a device no driver owns is left as it is): its
/// index and base address, for BARs the firmware assigned (not zero). A
/// type 1 header (a bridge) has two BARs.
pub fn memory_bases<C: ConfigSpace + ?Sized>(
    f: &mut Function<'_, C>,
    layout: u8,
) -> heapless::Vec<(u8, u64), 6> {
    let count = if layout == 1 { 2 } else { 6 };
    let mut out = heapless::Vec::new();
    let mut i = 0;
    while i < count {
        let value = f.get(regs::BARS.at(i));
        let v = hwio::LocalRegisterCopy::<u32, BarReg::Register>::new(value);
        let mut base = u64::from(value & !0xf);
        let wide = !v.is_set(BarReg::IO) && v.matches_all(BarReg::MEM_TYPE::Anywhere64);
        if wide && i + 1 < count {
            base |= u64::from(f.get(regs::BARS.at(i + 1))) << 32;
        }
        if !v.is_set(BarReg::IO) && base != 0 {
            let _ = out.push((i as u8, base));
        }
        i += if wide { 2 } else { 1 };
    }
    out
}

/// Whether function 0 of a device says it has more functions.
pub fn multifunction<C: ConfigSpace + ?Sized>(f: &mut Function<'_, C>) -> bool {
    f.read(regs::HEADER_TYPE).is_set(HeaderType::MULTIFUNCTION)
}

/// Decodes and sizes the six BARs of a type 0 function. Sizing writes all
/// ones to each BAR with decoding turned off, then restores BAR and
/// command register, so the device never decodes a bogus range. A 64-bit
/// memory BAR takes two slots: the upper one is `None`.
pub fn bars<C: ConfigSpace + ?Sized>(
    f: &mut Function<'_, C>,
    malformed: &mut impl FnMut(MalformedBar),
) -> [Option<Bar>; 6] {
    let command = f.get(regs::COMMAND);
    let decode = Command::IO_SPACE::SET + Command::MEMORY_SPACE::SET;
    f.set(regs::COMMAND, command & !decode.value);
    let mut out = [None; 6];
    let mut i = 0;
    while i < 6 {
        let reg = regs::BARS.at(i);
        let value = f.get(reg);
        f.set(reg, u32::MAX);
        let mask = f.get(reg);
        f.set(reg, value);
        let bad = MalformedBar {
            index: i as u8,
            value,
            mask,
        };
        let v = hwio::LocalRegisterCopy::<u32, BarReg::Register>::new(value);
        if mask == 0 {
            i += 1;
            continue;
        }
        if v.is_set(BarReg::IO) {
            let size = (!(mask & !3) & 0xffff).wrapping_add(1);
            let port = value & !3;
            if size.is_power_of_two() && port & (size - 1) == 0 && port + size <= 0x1_0000 {
                out[i] = Some(Bar::Io {
                    port: port as u16,
                    size: size as u16,
                });
            } else {
                malformed(bad);
            }
            i += 1;
            continue;
        }
        let is64 = v.matches_all(BarReg::MEM_TYPE::Anywhere64);
        let (mut addr, mut size_mask) = (u64::from(value & !0xf), u64::from(mask & !0xf));
        if is64 {
            if i == 5 {
                malformed(bad);
                break;
            }
            let hi = regs::BARS.at(i + 1);
            let high = f.get(hi);
            f.set(hi, u32::MAX);
            let high_mask = f.get(hi);
            f.set(hi, high);
            addr |= u64::from(high) << 32;
            size_mask |= u64::from(high_mask) << 32;
        } else {
            size_mask |= 0xffff_ffff_0000_0000;
        }
        let size = (!size_mask).wrapping_add(1);
        if size.is_power_of_two() && addr & (size - 1) == 0 {
            out[i] = Some(Bar::Mem {
                addr,
                size,
                prefetchable: v.is_set(BarReg::PREFETCHABLE),
                is64,
            });
        } else {
            malformed(bad);
        }
        i += if is64 { 2 } else { 1 };
    }
    f.set(regs::COMMAND, command);
    out
}

/// The function's interrupt.
pub fn interrupt<C: ConfigSpace + ?Sized>(f: &mut Function<'_, C>) -> Interrupt {
    let pin = f.get(regs::INTERRUPT_PIN);
    Interrupt {
        line: f.get(regs::INTERRUPT_LINE),
        pin: (1..=4).contains(&pin).then_some(pin),
    }
}

/// Why a capability list was cut short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadCapabilities {
    /// A pointer into the header or not dword-aligned.
    Pointer { at: u8, to: u8 },
    /// More than [`MAX_CAPABILITIES`] entries: the list loops.
    Loop,
}

/// The function's capability list, as far as it is well formed.
pub fn capabilities<C: ConfigSpace + ?Sized>(
    f: &mut Function<'_, C>,
) -> (
    heapless::Vec<Capability, MAX_CAPABILITIES>,
    Option<BadCapabilities>,
) {
    let mut out = heapless::Vec::new();
    if !f.read(regs::STATUS).is_set(Status::CAPABILITIES_LIST) {
        return (out, None);
    }
    let mut at = regs::CAPABILITIES.offset() as u8;
    let mut next = f.get(regs::CAPABILITIES);
    while next != 0 {
        if usize::from(next) < regs::DEVICE_SPECIFIC || next & 3 != 0 {
            return (out, Some(BadCapabilities::Pointer { at, to: next }));
        }
        let id = f.read8(usize::from(next));
        if out.push(Capability { id, offset: next }).is_err() {
            return (out, Some(BadCapabilities::Loop));
        }
        at = next + 1;
        next = f.read8(usize::from(at));
    }
    (out, None)
}
