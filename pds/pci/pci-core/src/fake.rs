//! A fake configuration space for host tests: functions as 256-byte
//! spaces whose BARs size themselves like real decoders (writing all ones
//! reads back the size mask), absent slots reading all ones, and a way to
//! plant garbage. [`FakeConfig::qemu_pc`] is QEMU's `pc` bus as this
//! project runs it.

use std::collections::HashMap;

use pd_config::Bdf;

use crate::config::ConfigSpace;

#[derive(Clone)]
struct FakeSpace {
    space: [u8; 256],
    /// Size masks of the six BARs (0 = not implemented); the low flag bits
    /// are read-only.
    masks: [u32; 6],
    /// Command register bits the device implements.
    command_mask: u16,
}

/// A bus of fake functions.
#[derive(Clone, Default)]
pub struct FakeConfig {
    fns: HashMap<Bdf, FakeSpace>,
    /// Every write, in order.
    pub writes: Vec<(Bdf, u8, u8, u32)>,
}

/// One function to add: identity, class, BARs as (value, size mask), pin
/// and line.
pub struct FakeFn {
    pub vendor: u16,
    pub device: u16,
    pub class: [u8; 3],
    pub revision: u8,
    pub bars: [(u32, u32); 6],
    pub pin: u8,
    pub line: u8,
    /// Capability structures: (offset, id, next).
    pub caps: Vec<(u8, u8, u8)>,
}

pub const fn bdf(bus: u8, dev: u8, func: u8) -> Bdf {
    Bdf { bus, dev, func }
}

impl FakeConfig {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, at: Bdf, f: FakeFn) {
        let mut space = [0u8; 256];
        space[0..2].copy_from_slice(&f.vendor.to_le_bytes());
        space[2..4].copy_from_slice(&f.device.to_le_bytes());
        space[8] = f.revision;
        space[9] = f.class[2];
        space[10] = f.class[1];
        space[11] = f.class[0];
        let mut masks = [0; 6];
        for (i, (value, mask)) in f.bars.iter().enumerate() {
            space[0x10 + 4 * i..0x14 + 4 * i].copy_from_slice(&value.to_le_bytes());
            masks[i] = *mask;
        }
        space[0x3c] = f.line;
        space[0x3d] = f.pin;
        if let Some((first, _, _)) = f.caps.first() {
            space[6] |= 1 << 4;
            space[0x34] = *first;
        }
        for (at, id, next) in &f.caps {
            space[usize::from(*at)] = *id;
            space[usize::from(*at) + 1] = *next;
        }
        self.fns.insert(
            at,
            FakeSpace {
                space,
                masks,
                command_mask: 0x0547,
            },
        );
    }

    /// QEMU's `pc` machine with the devices this project adds: host bridge,
    /// PIIX3 ISA bridge, VGA, the RTL8139 at 00:03.0 and OHCI at 00:04.0.
    pub fn qemu_pc() -> Self {
        let mut c = Self::new();
        let none = (0, 0);
        c.add(
            bdf(0, 0, 0),
            FakeFn {
                vendor: 0x8086,
                device: 0x1237,
                class: [6, 0, 0],
                revision: 2,
                bars: [none; 6],
                pin: 0,
                line: 0,
                caps: vec![],
            },
        );
        c.add(
            bdf(0, 1, 0),
            FakeFn {
                vendor: 0x8086,
                device: 0x7000,
                class: [6, 1, 0],
                revision: 0,
                bars: [none; 6],
                pin: 0,
                line: 0,
                caps: vec![],
            },
        );
        c.add(
            bdf(0, 3, 0),
            FakeFn {
                vendor: 0x10ec,
                device: 0x8139,
                class: [2, 0, 0],
                revision: 0x20,
                bars: [
                    (0xc001, 0xffff_ff01),
                    (0xfebf_1000, 0xffff_ff00),
                    none,
                    none,
                    none,
                    none,
                ],
                pin: 1,
                line: 11,
                caps: vec![],
            },
        );
        c.add(
            bdf(0, 4, 0),
            FakeFn {
                vendor: 0x106b,
                device: 0x003f,
                class: [0x0c, 0x03, 0x10],
                revision: 0,
                bars: [(0xfebf_2000, 0xffff_ff00), none, none, none, none, none],
                pin: 1,
                line: 11,
                caps: vec![(0x40, 0x01, 0x50), (0x50, 0x05, 0)],
            },
        );
        c
    }

    /// Overwrites raw bytes of a function's space (garbage from a device).
    pub fn poke(&mut self, at: Bdf, offset: usize, bytes: &[u8]) {
        let f = self.fns.get_mut(&at).expect("no such fake function");
        f.space[offset..offset + bytes.len()].copy_from_slice(bytes);
    }

    /// Sets a BAR's size mask (0 makes it unimplemented).
    pub fn set_bar_mask(&mut self, at: Bdf, index: usize, mask: u32) {
        self.fns.get_mut(&at).expect("no such fake function").masks[index] = mask;
    }

    /// A function's command register as the device holds it.
    pub fn command(&self, at: Bdf) -> u16 {
        let s = &self.fns[&at].space;
        u16::from_le_bytes([s[4], s[5]])
    }

    fn load(&self, at: Bdf, offset: u8, width: usize) -> u32 {
        match self.fns.get(&at) {
            None => u32::MAX >> (32 - 8 * width),
            Some(f) => {
                let o = usize::from(offset);
                let mut b = [0u8; 4];
                b[..width].copy_from_slice(&f.space[o..o + width]);
                u32::from_le_bytes(b)
            }
        }
    }

    fn store(&mut self, at: Bdf, offset: u8, width: usize, value: u32) {
        self.writes.push((at, offset, width as u8, value));
        let Some(f) = self.fns.get_mut(&at) else {
            return;
        };
        let o = usize::from(offset);
        let bytes = value.to_le_bytes();
        let mut scratch = f.space;
        scratch[o..o + width].copy_from_slice(&bytes[..width]);
        // BARs keep their flag bits and decode only what their size allows.
        for i in 0..6 {
            let at = 0x10 + 4 * i;
            if o < at + 4 && at < o + width {
                let old = u32::from_le_bytes(f.space[at..at + 4].try_into().unwrap());
                let new = u32::from_le_bytes(scratch[at..at + 4].try_into().unwrap());
                let mask = f.masks[i];
                let flags = if old & 1 == 1 { 0x3 } else { 0xf };
                let v = if mask == 0 {
                    0
                } else {
                    (new & mask & !flags) | (old & flags)
                };
                scratch[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        // The command register holds only implemented bits; the status
        // register's error bits clear when written with 1.
        let cmd = u16::from_le_bytes([scratch[4], scratch[5]]) & f.command_mask;
        scratch[4..6].copy_from_slice(&cmd.to_le_bytes());
        if o <= 6 && 6 < o + width {
            let old = u16::from_le_bytes([f.space[6], f.space[7]]);
            let written = u16::from_le_bytes([scratch[6], scratch[7]]);
            let st = old & !(written & 0xf900);
            scratch[6..8].copy_from_slice(&st.to_le_bytes());
        }
        // The identity and header are read-only.
        scratch[0..4].copy_from_slice(&f.space[0..4]);
        scratch[8..12].copy_from_slice(&f.space[8..12]);
        scratch[0x0e] = f.space[0x0e];
        scratch[0x34] = f.space[0x34];
        scratch[0x3d] = f.space[0x3d];
        f.space = scratch;
    }
}

impl ConfigSpace for FakeConfig {
    fn read8(&mut self, bdf: Bdf, offset: u8) -> u8 {
        self.load(bdf, offset, 1) as u8
    }
    fn read16(&mut self, bdf: Bdf, offset: u8) -> u16 {
        self.load(bdf, offset, 2) as u16
    }
    fn read32(&mut self, bdf: Bdf, offset: u8) -> u32 {
        self.load(bdf, offset, 4)
    }
    fn write8(&mut self, bdf: Bdf, offset: u8, value: u8) {
        self.store(bdf, offset, 1, value.into())
    }
    fn write16(&mut self, bdf: Bdf, offset: u8, value: u16) {
        self.store(bdf, offset, 2, value.into())
    }
    fn write32(&mut self, bdf: Bdf, offset: u8, value: u32) {
        self.store(bdf, offset, 4, value)
    }
}
