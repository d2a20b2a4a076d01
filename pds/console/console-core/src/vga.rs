//! VGA registers, as far as the console needs them: is the display in a
//! colour text mode whose buffer is at 0xB8000 (what a BIOS leaves and what
//! GRUB keeps with `gfxpayload=text`), and the hardware cursor, which the
//! console hides because it does not move it.
//!
//! A UEFI PC hands over a graphics framebuffer instead (GRUB cannot set a
//! text mode there), and a PC may have no VGA at all (its ports then read
//! as all ones): in both cases [`probe`] says so, and the console PD draws
//! nothing rather than scribble on a framebuffer.
//!
//! The registers are reached through one I/O port range from 0x3C0
//! ([`PORT_BASE`], [`PORT_COUNT`]); offsets below are from its base. The
//! Graphics Controller and the CRT Controller are index/data pairs: write
//! the register's index, then read or write its data port.

use hwio::{ReadOnly, ReadWrite, Register, Registers, WriteOnly, register_bitfields};

/// The VGA's I/O ports (colour addressing): `<ioport addr="0x3c0" size="0x20">`.
pub const PORT_BASE: u16 = 0x3C0;
pub const PORT_COUNT: u16 = 0x20;

/// Physical address and size of the colour text buffer.
pub const TEXT_BUFFER: u64 = 0xB8000;
pub const TEXT_BUFFER_SIZE: usize = 0x1000;

register_bitfields![u8,
    /// Miscellaneous Output (read at 0x3CC).
    pub MiscOutput [
        /// CRTC at 0x3Dx and colour addressing; clear: 0x3Bx, monochrome.
        IO_COLOUR OFFSET(0) NUMBITS(1) [],
    ],
    /// Graphics Controller register 6, Miscellaneous Graphics.
    pub GcMisc [
        /// Set: graphics mode; clear: alphanumeric (text).
        GRAPHICS OFFSET(0) NUMBITS(1) [],
        /// Where display memory appears in the CPU's address space.
        MEMORY_MAP OFFSET(2) NUMBITS(2) [
            A0000Wide = 0,
            A0000 = 1,
            B0000 = 2,
            B8000 = 3
        ],
    ],
    /// CRT Controller register 0x0A, Cursor Start.
    pub CursorStart [
        /// Set: no cursor.
        DISABLE OFFSET(5) NUMBITS(1) [],
    ],
];

/// Miscellaneous Output, read port (0x3CC).
pub const MISC_OUTPUT: Register<u8, MiscOutput::Register, ReadOnly> = Register::new(0x0C);
/// Graphics Controller index (0x3CE) and data (0x3CF).
pub const GC_INDEX: Register<u8, (), WriteOnly> = Register::new(0x0E);
pub const GC_DATA: Register<u8, (), ReadWrite> = Register::new(0x0F);
/// CRT Controller index (0x3D4) and data (0x3D5), colour addressing.
pub const CRTC_INDEX: Register<u8, (), WriteOnly> = Register::new(0x14);
pub const CRTC_DATA: Register<u8, (), ReadWrite> = Register::new(0x15);

/// Graphics Controller index of Miscellaneous Graphics.
pub const GC_MISC: u8 = 6;
/// CRT Controller index of Cursor Start.
pub const CRTC_CURSOR_START: u8 = 0x0A;

/// A display memory window that leaves out B8000.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryMap {
    /// A0000-AFFFF: graphics modes.
    A0000,
    /// B0000-B7FFF: monochrome text.
    B0000,
}

/// Why the console cannot draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotText {
    /// Every register read as 0xFF: nothing answers on the VGA ports.
    NoVga,
    /// A graphics mode (on a UEFI PC, the firmware's framebuffer).
    Graphics,
    /// A monochrome text mode (buffer at B0000, CRTC at 0x3Bx).
    Monochrome,
    /// Text mode, but the buffer is not mapped at B8000.
    Window(MemoryMap),
}

impl core::fmt::Display for NotText {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NotText::NoVga => write!(f, "no VGA answers on ports 0x3c0-0x3df"),
            NotText::Graphics => {
                write!(f, "the display is in a graphics mode (a UEFI framebuffer?)")
            }
            NotText::Monochrome => write!(f, "the display is in monochrome text mode"),
            NotText::Window(m) => write!(f, "text mode with its buffer mapped at {m:?}"),
        }
    }
}

/// Reads the mode registers and says whether the colour text buffer at
/// 0xB8000 is what the display shows.
pub fn probe(vga: &mut impl Registers) -> Result<(), NotText> {
    let misc_out = vga.get(MISC_OUTPUT);
    vga.set(GC_INDEX, GC_MISC);
    let gc_misc = vga.get(GC_DATA);
    decode(misc_out, gc_misc)
}

/// The decision of [`probe`], from the two registers' values.
pub fn decode(misc_out: u8, gc_misc: u8) -> Result<(), NotText> {
    if misc_out == 0xFF && gc_misc == 0xFF {
        return Err(NotText::NoVga);
    }
    let misc_out = hwio::LocalRegisterCopy::<u8, MiscOutput::Register>::new(misc_out);
    let gc = hwio::LocalRegisterCopy::<u8, GcMisc::Register>::new(gc_misc);
    if gc.is_set(GcMisc::GRAPHICS) {
        return Err(NotText::Graphics);
    }
    if !misc_out.is_set(MiscOutput::IO_COLOUR) {
        return Err(NotText::Monochrome);
    }
    use GcMisc::MEMORY_MAP::Value as Map;
    // The field has two bits and all four values are named: never None.
    match gc.read_as_enum(GcMisc::MEMORY_MAP) {
        Some(Map::A0000Wide | Map::B8000) => Ok(()),
        Some(Map::A0000) => Err(NotText::Window(MemoryMap::A0000)),
        Some(Map::B0000) | None => Err(NotText::Window(MemoryMap::B0000)),
    }
}

/// Hides the hardware cursor (the console does not move it, so it would
/// blink wherever the firmware or GRUB left it), keeping its shape bits.
pub fn hide_cursor(vga: &mut impl Registers) {
    vga.set(CRTC_INDEX, CRTC_CURSOR_START);
    let start = hwio::LocalRegisterCopy::<u8, CursorStart::Register>::new(vga.get(CRTC_DATA));
    vga.set(CRTC_DATA, start.get() | CursorStart::DISABLE::SET.value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use hwio::fake::FakeBus;
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;

    /// A VGA behind the port range: index/data register files as the
    /// hardware has them, or nothing at all (every read all ones).
    struct Vga {
        bus: FakeBus,
        gc: Rc<RefCell<HashMap<u8, u8>>>,
        crtc: Rc<RefCell<HashMap<u8, u8>>>,
    }

    fn vga(misc_out: u8, gc_misc: u8, cursor_start: u8) -> Vga {
        let bus = FakeBus::new("vga", PORT_COUNT as usize);
        bus.poke(MISC_OUTPUT, misc_out);
        let gc = Rc::new(RefCell::new(HashMap::from([(GC_MISC, gc_misc)])));
        let crtc = Rc::new(RefCell::new(HashMap::from([(
            CRTC_CURSOR_START,
            cursor_start,
        )])));
        for (index, data, file) in [(GC_INDEX, GC_DATA, &gc), (CRTC_INDEX, CRTC_DATA, &crtc)] {
            let selected = Rc::new(RefCell::new(0u8));
            let s = selected.clone();
            bus.on_write(index, move |_, i| *s.borrow_mut() = i);
            let (s, f) = (selected.clone(), file.clone());
            bus.on_read(data, move |_, _| *f.borrow().get(&s.borrow()).unwrap_or(&0));
            let (s, f) = (selected, file.clone());
            bus.on_write(data, move |_, v| {
                f.borrow_mut().insert(*s.borrow(), v);
            });
        }
        Vga { bus, gc, crtc }
    }

    /// Mode 3 as SeaBIOS sets it: Misc Output 0x67, GC misc 0x0E (text,
    /// odd/even chaining, map B8000), cursor lines 13-14.
    fn mode3() -> Vga {
        vga(0x67, 0x0E, 0x0D)
    }

    #[test]
    fn bios_text_mode_is_drawable() {
        let mut v = mode3();
        assert_eq!(probe(&mut v.bus), Ok(()));
    }

    #[test]
    fn graphics_mono_other_windows_and_no_vga_are_not() {
        // Mode 0x12/0x13 style: graphics, map A0000.
        assert_eq!(probe(&mut vga(0x67, 0x05, 0).bus), Err(NotText::Graphics));
        assert_eq!(probe(&mut vga(0x66, 0x0E, 0).bus), Err(NotText::Monochrome));
        assert_eq!(
            probe(&mut vga(0x67, 0x0A, 0).bus),
            Err(NotText::Window(MemoryMap::B0000))
        );
        // Text with the whole A0000-BFFFF window: B8000 is in it.
        assert_eq!(probe(&mut vga(0x67, 0x02, 0).bus), Ok(()));
        // Nothing on the ports.
        assert_eq!(probe(&mut vga(0xFF, 0xFF, 0xFF).bus), Err(NotText::NoVga));
    }

    #[test]
    fn the_cursor_is_hidden_and_its_shape_kept() {
        let mut v = mode3();
        hide_cursor(&mut v.bus);
        assert_eq!(v.crtc.borrow()[&CRTC_CURSOR_START], 0x0D | 0x20);
        assert_eq!(v.gc.borrow()[&GC_MISC], 0x0E, "the mode is left alone");
    }
}
