//! Access to configuration space: the [`ConfigSpace`] of the whole bus
//! (configuration mechanism #1 through ports 0xCF8-0xCFF on a PC, or a
//! fake), and one function's space as an hwio [`Bus`] so the header's
//! typed registers work on it.

use hwio::{Bus, Register, Registers, WriteOnly, register_bitfields};
use pd_config::Bdf;

use crate::regs::SPACE;

/// Reads and writes of any function's configuration space. Offsets are
/// below 256 and aligned to the access width (callers check).
pub trait ConfigSpace {
    fn read8(&mut self, bdf: Bdf, offset: u8) -> u8;
    fn read16(&mut self, bdf: Bdf, offset: u8) -> u16;
    fn read32(&mut self, bdf: Bdf, offset: u8) -> u32;
    fn write8(&mut self, bdf: Bdf, offset: u8, value: u8);
    fn write16(&mut self, bdf: Bdf, offset: u8, value: u16);
    fn write32(&mut self, bdf: Bdf, offset: u8, value: u32);
}

register_bitfields![u32,
    /// CONFIG_ADDRESS of mechanism #1.
    pub ConfigAddress [
        REGISTER OFFSET(2) NUMBITS(6) [],
        FUNCTION OFFSET(8) NUMBITS(3) [],
        DEVICE OFFSET(11) NUMBITS(5) [],
        BUS OFFSET(16) NUMBITS(8) [],
        ENABLE OFFSET(31) NUMBITS(1) [],
    ],
];

/// CONFIG_ADDRESS and CONFIG_DATA, as offsets from port 0xCF8.
const ADDRESS: Register<u32, ConfigAddress::Register, WriteOnly> = Register::new(0);
const DATA: usize = 4;
/// The ports mechanism #1 uses: 0xCF8..0xD00.
pub const MECHANISM1_PORTS: u16 = 8;

/// Configuration mechanism #1 over a bus of the eight ports from 0xCF8
/// (on seL4 every access is a kernel call: two per configuration access).
pub struct Mechanism1<B: Bus>(B);

impl<B: Bus> Mechanism1<B> {
    pub fn new(ports: B) -> Self {
        Mechanism1(ports)
    }

    fn select(&mut self, bdf: Bdf, offset: u8) -> usize {
        self.0.write(
            ADDRESS,
            ConfigAddress::ENABLE::SET
                + ConfigAddress::BUS.val(bdf.bus.into())
                + ConfigAddress::DEVICE.val(bdf.dev.into())
                + ConfigAddress::FUNCTION.val(bdf.func.into())
                + ConfigAddress::REGISTER.val(u32::from(offset) >> 2),
        );
        DATA + usize::from(offset & 3)
    }
}

impl<B: Bus> ConfigSpace for Mechanism1<B> {
    fn read8(&mut self, bdf: Bdf, offset: u8) -> u8 {
        let port = self.select(bdf, offset);
        self.0.read8(port)
    }
    fn read16(&mut self, bdf: Bdf, offset: u8) -> u16 {
        let port = self.select(bdf, offset);
        self.0.read16(port)
    }
    fn read32(&mut self, bdf: Bdf, offset: u8) -> u32 {
        let port = self.select(bdf, offset);
        self.0.read32(port)
    }
    fn write8(&mut self, bdf: Bdf, offset: u8, value: u8) {
        let port = self.select(bdf, offset);
        self.0.write8(port, value)
    }
    fn write16(&mut self, bdf: Bdf, offset: u8, value: u16) {
        let port = self.select(bdf, offset);
        self.0.write16(port, value)
    }
    fn write32(&mut self, bdf: Bdf, offset: u8, value: u32) {
        let port = self.select(bdf, offset);
        self.0.write32(port, value)
    }
}

/// One function's configuration space as a bus: offset = register.
pub struct Function<'c, C: ConfigSpace + ?Sized> {
    pub space: &'c mut C,
    pub bdf: Bdf,
}

impl<'c, C: ConfigSpace + ?Sized> Function<'c, C> {
    pub fn new(space: &'c mut C, bdf: Bdf) -> Self {
        Function { space, bdf }
    }
}

fn reg(offset: usize, width: usize) -> u8 {
    assert!(
        offset + width <= SPACE && offset.is_multiple_of(width),
        "pci: configuration access of {width} bytes at {offset:#x}"
    );
    offset as u8
}

impl<C: ConfigSpace + ?Sized> Bus for Function<'_, C> {
    fn read8(&mut self, offset: usize) -> u8 {
        self.space.read8(self.bdf, reg(offset, 1))
    }
    fn read16(&mut self, offset: usize) -> u16 {
        self.space.read16(self.bdf, reg(offset, 2))
    }
    fn read32(&mut self, offset: usize) -> u32 {
        self.space.read32(self.bdf, reg(offset, 4))
    }
    fn write8(&mut self, offset: usize, value: u8) {
        self.space.write8(self.bdf, reg(offset, 1), value)
    }
    fn write16(&mut self, offset: usize, value: u16) {
        self.space.write16(self.bdf, reg(offset, 2), value)
    }
    fn write32(&mut self, offset: usize, value: u32) {
        self.space.write32(self.bdf, reg(offset, 4), value)
    }
}
