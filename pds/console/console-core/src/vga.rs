//! VGA registers, as far as the console needs them: is the display in a
//! colour text mode whose buffer is at 0xB8000 (what a BIOS leaves and what
//! GRUB keeps with `gfxpayload=text`), and the hardware cursor, which the
//! console hides because it does not move it.
//!
//! A UEFI PC hands over a graphics framebuffer instead (GRUB cannot set a
//! text mode there), and a PC may have no VGA at all (the ports then read
//! as all ones): in both cases [`probe`] says so and the console PD draws
//! nothing rather than scribble on a framebuffer.

/// The I/O ports of the VGA (colour addressing), one range in system.xml:
/// `<ioport addr="0x3c0" size="0x20">`.
pub const PORT_BASE: u16 = 0x3C0;
pub const PORT_COUNT: u16 = 0x20;

/// Miscellaneous Output register, read port.
pub const MISC_OUTPUT_READ: u16 = 0x3CC;
/// Graphics Controller: index and data ports.
pub const GC_INDEX: u16 = 0x3CE;
pub const GC_DATA: u16 = 0x3CF;
/// CRT Controller at its colour address (Misc Output bit 0 set).
pub const CRTC_INDEX: u16 = 0x3D4;
pub const CRTC_DATA: u16 = 0x3D5;

/// Physical address and size of the colour text buffer.
pub const TEXT_BUFFER: u64 = 0xB8000;
pub const TEXT_BUFFER_SIZE: usize = 0x1000;

/// Miscellaneous Output: CRTC at 0x3Dx (colour) rather than 0x3Bx.
pub const MISC_IO_COLOUR: u8 = 1 << 0;

/// Graphics Controller register 6, Miscellaneous Graphics.
pub const GC_MISC: u8 = 6;
/// Set: graphics mode; clear: alphanumeric (text).
pub const GC_MISC_GRAPHICS: u8 = 1 << 0;
const GC_MISC_MAP_SHIFT: u8 = 2;
const GC_MISC_MAP_MASK: u8 = 0b11 << GC_MISC_MAP_SHIFT;

/// CRTC register 0x0A, Cursor Start; bit 5 hides the cursor.
pub const CRTC_CURSOR_START: u8 = 0x0A;
pub const CURSOR_DISABLE: u8 = 1 << 5;

/// Where the Graphics Controller maps display memory into the CPU's view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryMap {
    /// A0000-BFFFF (128 KiB): covers B8000 too.
    A0000Wide,
    /// A0000-AFFFF: graphics modes.
    A0000,
    /// B0000-B7FFF: monochrome text.
    B0000,
    /// B8000-BFFFF: colour text.
    B8000,
}

impl MemoryMap {
    pub fn from_gc_misc(v: u8) -> Self {
        match (v & GC_MISC_MAP_MASK) >> GC_MISC_MAP_SHIFT {
            0 => MemoryMap::A0000Wide,
            1 => MemoryMap::A0000,
            2 => MemoryMap::B0000,
            _ => MemoryMap::B8000,
        }
    }
    fn covers_b8000(self) -> bool {
        matches!(self, MemoryMap::A0000Wide | MemoryMap::B8000)
    }
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

/// Port access, implemented by the PD with its I/O port capability.
pub trait Ports {
    fn inb(&mut self, port: u16) -> u8;
    fn outb(&mut self, port: u16, value: u8);
}

/// Reads the mode registers and says whether the colour text buffer at
/// 0xB8000 is what the display shows.
pub fn probe(ports: &mut impl Ports) -> Result<(), NotText> {
    let misc_out = ports.inb(MISC_OUTPUT_READ);
    ports.outb(GC_INDEX, GC_MISC);
    let gc_misc = ports.inb(GC_DATA);
    decode(misc_out, gc_misc)
}

/// The decision of [`probe`], from the two registers' values.
pub fn decode(misc_out: u8, gc_misc: u8) -> Result<(), NotText> {
    if misc_out == 0xFF && gc_misc == 0xFF {
        return Err(NotText::NoVga);
    }
    if gc_misc & GC_MISC_GRAPHICS != 0 {
        return Err(NotText::Graphics);
    }
    if misc_out & MISC_IO_COLOUR == 0 {
        return Err(NotText::Monochrome);
    }
    let map = MemoryMap::from_gc_misc(gc_misc);
    if !map.covers_b8000() {
        return Err(NotText::Window(map));
    }
    Ok(())
}

/// Hides the hardware cursor (the console does not move it, so it would
/// blink wherever the firmware or GRUB left it).
pub fn hide_cursor(ports: &mut impl Ports) {
    ports.outb(CRTC_INDEX, CRTC_CURSOR_START);
    let v = ports.inb(CRTC_DATA);
    ports.outb(CRTC_DATA, v | CURSOR_DISABLE);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Index/data register files behind the ports, as a VGA has them.
    #[derive(Default)]
    struct FakeVga {
        misc_out: u8,
        gc: HashMap<u8, u8>,
        crtc: HashMap<u8, u8>,
        gc_index: u8,
        crtc_index: u8,
        absent: bool,
    }

    impl Ports for FakeVga {
        fn inb(&mut self, port: u16) -> u8 {
            if self.absent {
                return 0xFF;
            }
            match port {
                MISC_OUTPUT_READ => self.misc_out,
                GC_DATA => *self.gc.get(&self.gc_index).unwrap_or(&0),
                CRTC_DATA => *self.crtc.get(&self.crtc_index).unwrap_or(&0),
                _ => panic!("read of port {port:#x}"),
            }
        }
        fn outb(&mut self, port: u16, value: u8) {
            match port {
                GC_INDEX => self.gc_index = value,
                CRTC_INDEX => self.crtc_index = value,
                CRTC_DATA => {
                    self.crtc.insert(self.crtc_index, value);
                }
                _ => panic!("write of port {port:#x}"),
            }
        }
    }

    /// Mode 3 as SeaBIOS sets it: Misc Output 0x67, GC misc 0x0E (text,
    /// odd/even chaining, map B8000).
    fn mode3() -> FakeVga {
        let mut v = FakeVga {
            misc_out: 0x67,
            ..Default::default()
        };
        v.gc.insert(GC_MISC, 0x0E);
        v.crtc.insert(CRTC_CURSOR_START, 0x0D);
        v
    }

    #[test]
    fn bios_text_mode_is_drawable() {
        assert_eq!(probe(&mut mode3()), Ok(()));
    }

    #[test]
    fn graphics_mono_other_windows_and_no_vga_are_not() {
        let mut v = mode3();
        v.gc.insert(GC_MISC, 0x05); // mode 0x12/0x13 style: graphics, map A0000
        assert_eq!(probe(&mut v), Err(NotText::Graphics));
        let mut v = mode3();
        v.misc_out = 0x66;
        assert_eq!(probe(&mut v), Err(NotText::Monochrome));
        let mut v = mode3();
        v.gc.insert(GC_MISC, 0x0A); // text, map B0000
        assert_eq!(probe(&mut v), Err(NotText::Window(MemoryMap::B0000)));
        let mut v = mode3();
        v.gc.insert(GC_MISC, 0x02); // text, the whole A0000-BFFFF window
        assert_eq!(probe(&mut v), Ok(()));
        let mut v = FakeVga {
            absent: true,
            ..Default::default()
        };
        assert_eq!(probe(&mut v), Err(NotText::NoVga));
    }

    #[test]
    fn the_cursor_is_hidden_and_its_shape_kept() {
        let mut v = mode3();
        hide_cursor(&mut v);
        assert_eq!(v.crtc[&CRTC_CURSOR_START], 0x0D | CURSOR_DISABLE);
    }
}
