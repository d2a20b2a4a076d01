//! A buffer inside a DMA region.

use bytemuck::Pod;
use core::mem::{align_of, size_of};

use crate::DmaError;

/// Memory handed out by [`DmaRegion::alloc`](crate::DmaRegion::alloc):
/// its virtual address for the CPU, its physical address for the device.
/// All access is volatile (byte copies: `shared_copy`, as opaque) and
/// bounds-checked; an access outside the buffer
/// or misaligned for its type is a driver bug and panics, naming the
/// buffer, the offset and the size. Descriptors are any [`Pod`] type, so a
/// value the device wrote is never an invalid Rust value.
#[derive(Debug)]
pub struct DmaBuf {
    region: &'static str,
    name: &'static str,
    vaddr: usize,
    paddr: u64,
    len: usize,
}

impl DmaBuf {
    /// # Safety
    ///
    /// `vaddr..vaddr + len` is mapped read-write for the PD's life, at
    /// physical `paddr`, and no other `DmaBuf` or code in the PD uses it.
    pub(crate) unsafe fn new(
        region: &'static str,
        name: &'static str,
        vaddr: usize,
        paddr: u64,
        len: usize,
    ) -> Self {
        DmaBuf {
            region,
            name,
            vaddr,
            paddr,
            len,
        }
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
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The physical address of byte `offset` (for descriptor `i` of a ring:
    /// `paddr_at(i * size)`); `offset == len` is allowed (an end address).
    #[track_caller]
    pub fn paddr_at(&self, offset: usize) -> u64 {
        assert!(
            offset <= self.len,
            "dma: offset {offset:#x} is outside buffer '{}' of {:#x} bytes",
            self.name,
            self.len
        );
        self.paddr + offset as u64
    }

    /// The physical address as a 32-bit engine takes it; refused, never
    /// truncated, when any byte of the buffer lies at or above 4 GiB.
    pub fn paddr32(&self) -> Result<u32, DmaError> {
        self.paddr32_at(0)
    }

    /// [`paddr_at`](Self::paddr_at) for a 32-bit engine.
    pub fn paddr32_at(&self, offset: usize) -> Result<u32, DmaError> {
        let paddr = self.paddr_at(offset);
        let end = self.paddr + self.len as u64;
        if end > 1 << 32 {
            return Err(DmaError::BufferAboveLimit {
                region: self.region,
                buffer: self.name,
                paddr: self.paddr,
                size: self.len,
                limit: 1 << 32,
            });
        }
        Ok(paddr as u32)
    }

    #[track_caller]
    fn at<T>(&self, op: &str, offset: usize) -> *mut T {
        let bytes = size_of::<T>();
        let inside = offset.checked_add(bytes).is_some_and(|end| end <= self.len);
        assert!(
            inside,
            "dma: {bytes}-byte {op} at offset {offset:#x} is outside buffer '{}' of {:#x} bytes",
            self.name, self.len
        );
        let addr = self.vaddr + offset;
        assert!(
            addr.is_multiple_of(align_of::<T>()),
            "dma: {bytes}-byte {op} at offset {offset:#x} of buffer '{}' is not aligned to {}",
            self.name,
            align_of::<T>()
        );
        addr as *mut T
    }

    /// Reads a descriptor or a field at `offset` (volatile: the device may
    /// have written it).
    #[track_caller]
    pub fn read<T: Pod>(&self, offset: usize) -> T {
        let p = self.at::<T>("read", offset);
        // SAFETY: inside the buffer, aligned for T (checked above), and T is
        // valid for any bytes (Pod).
        unsafe { p.read_volatile() }
    }

    /// Writes a descriptor or a field at `offset` (volatile: the device may
    /// read it at any time once it owns the descriptor).
    #[track_caller]
    pub fn write<T: Pod>(&mut self, offset: usize, value: T) {
        let p = self.at::<T>("write", offset);
        // SAFETY: as for read; the buffer is ours to write.
        unsafe { p.write_volatile(value) }
    }

    /// Copies `src` into the buffer at `offset` (a frame to transmit).
    #[track_caller]
    pub fn copy_in(&mut self, offset: usize, src: &[u8]) {
        let dst = self.range("copy_in", offset, src.len());
        // SAFETY: dst..dst + src.len() is inside the buffer (checked), which
        // no Rust reference covers, so it cannot overlap `src`.
        unsafe { shared_copy::copy(dst as *mut u8, src.as_ptr(), src.len()) }
    }

    /// Copies bytes at `offset` out into `dst` (a received frame).
    #[track_caller]
    pub fn copy_out(&self, offset: usize, dst: &mut [u8]) {
        let src = self.range("copy_out", offset, dst.len());
        // SAFETY: src..src + dst.len() is inside the buffer (checked), which
        // no Rust reference covers, so it cannot overlap `dst`.
        unsafe { shared_copy::copy(dst.as_mut_ptr(), src as *const u8, dst.len()) }
    }

    /// Copies `len` bytes at `offset` into `dst` at `dst_offset`: from one
    /// DMA buffer straight into another (a received frame into the buffer
    /// a client lent), with no copy in between.
    #[track_caller]
    pub fn copy_to(&self, offset: usize, dst: &mut DmaBuf, dst_offset: usize, len: usize) {
        let src = self.range("copy_to", offset, len);
        let to = dst.range("copy_to", dst_offset, len);
        // SAFETY: both ranges are inside their buffers (checked), and two
        // DmaBufs never share memory (new's contract; `dst` is borrowed
        // mutably, so it is not `self`).
        unsafe { shared_copy::copy(to as *mut u8, src as *const u8, len) }
    }

    /// Sets every byte to zero (a ring before its first use).
    pub fn zero(&mut self) {
        let base = self.vaddr;
        for i in 0..self.len {
            // SAFETY: inside the buffer.
            unsafe { ((base + i) as *mut u8).write_volatile(0) };
        }
    }

    #[track_caller]
    fn range(&self, op: &str, offset: usize, len: usize) -> usize {
        let inside = offset.checked_add(len).is_some_and(|end| end <= self.len);
        assert!(
            inside,
            "dma: {op} of {len:#x} bytes at offset {offset:#x} is outside buffer '{}' of {:#x} bytes",
            self.name, self.len
        );
        self.vaddr + offset
    }
}
