//! A DMA region and its allocator.

use crate::{AddressWidth, DmaBuf, DmaError, PAGE_SIZE};

/// Physically contiguous memory that this PD owns for DMA, checked for one
/// device's address width, and a bump allocator over it. Drivers allocate
/// their rings and buffers once at start-up and keep them, so nothing is
/// ever freed: [`DmaRegion::alloc`] fails cleanly when the region is full.
#[derive(Debug)]
pub struct DmaRegion {
    name: &'static str,
    vaddr: usize,
    paddr: u64,
    size: usize,
    width: AddressWidth,
    /// Bytes from the start already handed out.
    used: usize,
}

impl DmaRegion {
    /// The region of `size` bytes mapped at `vaddr`, at physical `paddr`,
    /// for a device that drives `width` address bits. Refuses (naming the
    /// region, address, size and limit) memory the device cannot reach, a
    /// start that is not page-aligned, and an empty region.
    ///
    /// # Safety
    ///
    /// `vaddr..vaddr + size` is mapped readable and writable for the rest
    /// of the PD's life, backed by physically contiguous memory starting at
    /// `paddr`, and owned by this PD for DMA: nothing else in the PD uses
    /// it, and only the devices this PD drives access it from outside.
    pub unsafe fn new(
        name: &'static str,
        vaddr: usize,
        paddr: u64,
        size: usize,
        width: AddressWidth,
    ) -> Result<Self, DmaError> {
        if size == 0 {
            return Err(DmaError::Empty { region: name });
        }
        if !vaddr.is_multiple_of(PAGE_SIZE) || !paddr.is_multiple_of(PAGE_SIZE as u64) {
            return Err(DmaError::Misaligned {
                region: name,
                vaddr,
                paddr,
            });
        }
        if !width.reaches(paddr, size as u64) || vaddr.checked_add(size).is_none() {
            return Err(DmaError::AboveLimit {
                region: name,
                paddr,
                size: size as u64,
                limit: width.limit(),
            });
        }
        Ok(DmaRegion {
            name,
            vaddr,
            paddr,
            size,
            width,
            used: 0,
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }
    pub fn vaddr(&self) -> usize {
        self.vaddr
    }
    pub fn paddr(&self) -> u64 {
        self.paddr
    }
    pub fn size(&self) -> usize {
        self.size
    }
    pub fn width(&self) -> AddressWidth {
        self.width
    }
    /// Bytes not yet handed out (some may go to alignment padding).
    pub fn free(&self) -> usize {
        self.size - self.used
    }

    /// A buffer of `len` bytes whose physical address is a multiple of
    /// `align` (a power of two: OHCI's HCCA 256, its EDs and TDs 16, an
    /// RTL8139 transmit buffer 4). Up to a page of alignment holds for the
    /// virtual address too (the region starts on a page in both spaces).
    /// The buffer starts zeroed only if the region did; use
    /// [`DmaBuf::zero`] for rings.
    pub fn alloc(
        &mut self,
        buffer: &'static str,
        len: usize,
        align: usize,
    ) -> Result<DmaBuf, DmaError> {
        if !align.is_power_of_two() {
            return Err(DmaError::BadAlign {
                region: self.name,
                align,
            });
        }
        if len == 0 {
            return Err(DmaError::ZeroLength {
                region: self.name,
                buffer,
            });
        }
        let exhausted = DmaError::Exhausted {
            region: self.name,
            buffer,
            len,
            align,
            free: self.free(),
        };
        // Align the physical address: that is what the device checks.
        let here = self.paddr + self.used as u64;
        let pad = (here.next_multiple_of(align as u64) - here) as usize;
        let start = self.used.checked_add(pad).ok_or(exhausted)?;
        let end = start.checked_add(len).ok_or(exhausted)?;
        if end > self.size {
            return Err(exhausted);
        }
        self.used = end;
        // SAFETY: start..end lies inside the region (checked), which the
        // constructor's contract makes ours; the bump never hands out a
        // byte twice, so the buffer is exclusively the caller's.
        Ok(unsafe {
            DmaBuf::new(
                self.name,
                buffer,
                self.vaddr + start,
                self.paddr + start as u64,
                len,
            )
        })
    }
}
