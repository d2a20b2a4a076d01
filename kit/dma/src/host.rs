//! DMA memory on the host, for tests of driver cores: ordinary memory with
//! a made-up physical address, and the device's side of it.

use std::alloc::{Layout, alloc_zeroed};
use std::cell::Cell;

use crate::{AddressWidth, DmaError, DmaRegion, PAGE_SIZE};

/// A page-aligned, zeroed block that a test pretends lives at physical
/// `paddr`. It is leaked, so regions and buffers over it stay valid for
/// the rest of the test process, as a PD's do.
pub struct HostDma {
    base: *mut u8,
    paddr: u64,
    size: usize,
    taken: Cell<bool>,
}

/// A device access outside the block: the test's fake device followed a
/// bad address, which a driver core must never give it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfRange {
    pub paddr: u64,
    pub len: usize,
}

impl HostDma {
    /// `size` bytes (rounded up to a page) at pretend physical `paddr`,
    /// which the test picks: above 4 GiB to test a 32-bit device's refusal.
    pub fn new(size: usize, paddr: u64) -> Self {
        let size = size.max(1).next_multiple_of(PAGE_SIZE);
        let layout = Layout::from_size_align(size, PAGE_SIZE).expect("host DMA layout");
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { alloc_zeroed(layout) };
        assert!(!base.is_null(), "host DMA: out of memory");
        HostDma {
            base,
            paddr,
            size,
            taken: Cell::new(false),
        }
    }

    /// The block as a DMA region for a `width`-bit device, with the checks
    /// a PD's region gets. Only once: two regions would hand out the same
    /// memory twice.
    pub fn region(&self, name: &'static str, width: AddressWidth) -> Result<DmaRegion, DmaError> {
        assert!(!self.taken.replace(true), "host DMA: region taken twice");
        // SAFETY: the block is ours, never freed, page-aligned and of `size`
        // bytes; only this one region is made over it, and the device side
        // below touches it only when a test plays the device.
        unsafe { DmaRegion::new(name, self.base as usize, self.paddr, self.size, width) }
    }

    fn at(&self, paddr: u64, len: usize) -> Result<*mut u8, OutOfRange> {
        let bad = OutOfRange { paddr, len };
        let offset = paddr.checked_sub(self.paddr).ok_or(bad)?;
        let end = offset.checked_add(len as u64).ok_or(bad)?;
        if end > self.size as u64 {
            return Err(bad);
        }
        Ok(self.base.wrapping_add(offset as usize))
    }

    /// The device reads `dst.len()` bytes at physical `paddr`.
    pub fn device_read(&self, paddr: u64, dst: &mut [u8]) -> Result<(), OutOfRange> {
        let src = self.at(paddr, dst.len())?;
        // SAFETY: inside the block (checked); the test is single-threaded,
        // so the driver is not touching it meanwhile.
        unsafe { std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    /// The device writes `src` at physical `paddr`.
    pub fn device_write(&self, paddr: u64, src: &[u8]) -> Result<(), OutOfRange> {
        let dst = self.at(paddr, src.len())?;
        // SAFETY: as for device_read.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
        Ok(())
    }

    /// The device reads a little-endian 32-bit word (a descriptor field).
    pub fn device_read_u32(&self, paddr: u64) -> Result<u32, OutOfRange> {
        let mut b = [0; 4];
        self.device_read(paddr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// The device writes a little-endian 32-bit word.
    pub fn device_write_u32(&self, paddr: u64, value: u32) -> Result<(), OutOfRange> {
        self.device_write(paddr, &value.to_le_bytes())
    }
}

#[cfg(test)]
mod tests;
