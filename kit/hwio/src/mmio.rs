//! A bus over a mapped device region.

use crate::{Bus, Width, check_bounds};

/// Volatile, bounds-checked access to a device's memory-mapped registers.
/// Every access must lie inside the region and be aligned to its width;
/// anything else is a driver bug and panics with offset, width and size.
pub struct Mmio {
    name: &'static str,
    base: *mut u8,
    size: usize,
}

impl Mmio {
    /// A bus over `size` bytes at `vaddr`, named `name` in panics.
    ///
    /// # Safety
    ///
    /// `vaddr..vaddr + size` is mapped uncached (device memory) for the rest
    /// of the PD's life, readable and writable, and no other code accesses
    /// it as ordinary memory.
    pub unsafe fn new(name: &'static str, vaddr: usize, size: usize) -> Self {
        Mmio {
            name,
            base: vaddr as *mut u8,
            size,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// The register at `offset`. Inline, with the failure out of line:
    /// the offsets are mostly constants, so an access costs a compare with
    /// the size and the volatile access itself (as a call, it cost the
    /// rtl8139 driver about 20 instructions per register).
    #[inline(always)]
    #[track_caller]
    fn at<T>(&self, offset: usize, width: Width) -> *mut T {
        let bytes = width.bytes();
        let inside = offset
            .checked_add(bytes)
            .is_some_and(|end| end <= self.size);
        if !inside || !offset.is_multiple_of(bytes) {
            self.refuse(offset, width);
        }
        self.base.wrapping_add(offset).cast()
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn refuse(&self, offset: usize, width: Width) -> ! {
        check_bounds("MMIO region", self.name, offset, width, self.size);
        panic!(
            "hwio: {}-byte access at offset {offset:#x} in MMIO region '{}' is not aligned to its width",
            width.bytes(),
            self.name
        );
    }
}

macro_rules! access {
    ($read:ident, $write:ident, $t:ty, $width:ident) => {
        #[inline]
        #[track_caller]
        fn $read(&mut self, offset: usize) -> $t {
            let p = self.at::<$t>(offset, Width::$width);
            // SAFETY: inside the mapped region (checked above), aligned, and
            // the constructor's contract makes it device memory for our life.
            unsafe { p.read_volatile() }
        }
        #[inline]
        #[track_caller]
        fn $write(&mut self, offset: usize, value: $t) {
            let p = self.at::<$t>(offset, Width::$width);
            // SAFETY: as for the read; the mapping is writable.
            unsafe { p.write_volatile(value) }
        }
    };
}

impl Bus for Mmio {
    access!(read8, write8, u8, W8);
    access!(read16, write16, u16, W16);
    access!(read32, write32, u32, W32);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ReadOnly, ReadWrite, Register, Registers, register_bitfields};

    register_bitfields![u32,
        Ctrl [
            ENABLE OFFSET(0) NUMBITS(1) [],
            MODE OFFSET(4) NUMBITS(3) [Idle = 0, Run = 5],
        ],
    ];
    const CTRL: Register<u32, Ctrl::Register, ReadWrite> = Register::new(0x4);
    const ID: Register<u16, (), ReadOnly> = Register::new(0x0);

    /// A leaked, 8-byte aligned host buffer standing in for device memory.
    fn region(words: usize) -> (Mmio, &'static mut [u64]) {
        let mem: &'static mut [u64] = vec![0u64; words].leak();
        // SAFETY: the buffer is leaked, so it lives for the test's life; the
        // test reads it only between bus accesses.
        let bus = unsafe { Mmio::new("test", mem.as_mut_ptr() as usize, words * 8) };
        (bus, mem)
    }

    #[test]
    fn typed_access_reaches_the_right_bytes() {
        let (mut bus, mem) = region(2);
        mem[0] = 0x1234;
        assert_eq!(bus.get(ID), 0x1234);
        bus.write(CTRL, Ctrl::ENABLE::SET + Ctrl::MODE::Run);
        assert_eq!(mem[0] >> 32, 0x51);
        bus.modify(CTRL, Ctrl::ENABLE::CLEAR);
        assert_eq!(
            bus.read(CTRL).read_as_enum(Ctrl::MODE),
            Some(Ctrl::MODE::Value::Run)
        );
        assert!(!bus.is_set(CTRL, Ctrl::ENABLE));
        bus.write8(15, 0xab);
        assert_eq!(mem[1] >> 56, 0xab);
    }

    #[test]
    #[should_panic(
        expected = "hwio: 4-byte access at offset 0x10 is outside MMIO region 'test' of 0x10 bytes"
    )]
    fn access_past_the_end_panics() {
        let (mut bus, _) = region(2);
        bus.read32(0x10);
    }

    #[test]
    #[should_panic(expected = "4-byte access at offset 0xe is outside MMIO region 'test'")]
    fn access_straddling_the_end_panics() {
        let (mut bus, _) = region(2);
        bus.write32(0xe, 0);
    }

    #[test]
    #[should_panic(expected = "outside MMIO region")]
    fn huge_offsets_do_not_wrap() {
        let (mut bus, _) = region(2);
        bus.read16(usize::MAX);
    }

    #[test]
    #[should_panic(expected = "2-byte access at offset 0x3 in MMIO region 'test' is not aligned")]
    fn misaligned_access_panics() {
        let (mut bus, _) = region(2);
        bus.read16(3);
    }
}
