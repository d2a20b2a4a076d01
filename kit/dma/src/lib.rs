//! Memory a device reads or writes (DMA), the driver kit's second layer: a
//! [`DmaRegion`] is memory with a known physical address that this PD owns
//! for DMA; its allocator hands out [`DmaBuf`]s (descriptor rings, packet
//! buffers) at the alignment each device structure needs, and every
//! buffer knows its own virtual and physical address. Descriptors and data
//! are accessed with volatile operations, bounds-checked, and ordered
//! against the device with the barriers in [`barrier`].
//!
//! Addresses a device cannot reach are refused when the region is set up,
//! never truncated: a region for a 32-bit DMA engine (RTL8139, OHCI) must
//! end at or below 4 GiB, and [`DmaBuf::paddr32`] checks again.
//!
//! On seL4 a region is a system.xml memory region with a `phys_addr` (the
//! system builder places it physically contiguously) mapped into the PD;
//! with feature `host`, [`host::HostDma`] backs one with ordinary memory
//! and a made-up physical address, and plays the device's side in tests.
//!
//! # Coherence on x86
//!
//! The regions are mapped write-back (cached). x86 PCI DMA snoops the CPU
//! caches, so no cache maintenance is needed; QEMU's `pc` machine has no
//! IOMMU, so the device uses physical addresses as they are. What remains
//! is ordering, see [`barrier`].
//!
//! # Coherence on 32-bit ARM (the i.MX6)
//!
//! The SoC's devices do not snoop the Cortex-A9's caches, and user code
//! cannot clean or invalidate them by address (the kernel's page
//! invocations could, at a system call per buffer). DMA regions, and every
//! other PD's map of the same memory, are therefore mapped uncached
//! (system-builder refuses a cached map of memory a DMA role binds on that
//! board). seL4 5.0.0 maps uncached memory strongly-ordered: accesses reach
//! memory in program order, with each other and with the device's
//! (equally strongly-ordered) registers, so [`barrier`]'s compiler fences
//! are all the ordering needed; such memory also faults on unaligned
//! accesses, which [`DmaBuf`]'s accessors never make.
#![cfg_attr(not(any(test, feature = "host")), no_std)]

pub mod barrier;
mod buf;
#[cfg(any(test, feature = "host"))]
pub mod host;
mod region;

pub use buf::DmaBuf;
/// Descriptors are `#[derive(Clone, Copy, Pod, Zeroable)] #[repr(C)]`
/// structs; a driver without its own bytemuck dependency adds
/// `#[bytemuck(crate = "dma::bytemuck")]`.
pub use bytemuck;
pub use bytemuck::{Pod, Zeroable};
pub use region::DmaRegion;

use core::fmt;

/// The granule regions are mapped in: regions start on a page.
pub const PAGE_SIZE: usize = 4096;

/// How many physical address bits a device's DMA engine drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressWidth(u8);

impl AddressWidth {
    /// A 32-bit engine (RTL8139, OHCI): addresses below 4 GiB.
    pub const BITS32: Self = Self(32);
    /// A 64-bit engine: any address.
    pub const BITS64: Self = Self(64);

    /// `bits` wide, 1..=64.
    pub const fn bits(bits: u8) -> Self {
        assert!(bits >= 1 && bits <= 64, "an address width is 1..=64 bits");
        Self(bits)
    }
    pub const fn get(self) -> u8 {
        self.0
    }
    /// The first address the device cannot reach, if any.
    pub const fn limit(self) -> Option<u64> {
        if self.0 == 64 {
            None
        } else {
            Some(1 << self.0)
        }
    }
    /// Whether `paddr..paddr + size` is reachable (and does not wrap).
    pub const fn reaches(self, paddr: u64, size: u64) -> bool {
        match paddr.checked_add(size) {
            None => false,
            Some(end) => match self.limit() {
                None => true,
                Some(limit) => end <= limit,
            },
        }
    }
}

/// Why a region or an allocation was refused. Every variant names the
/// region and the values that do not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaError {
    /// The region is empty.
    Empty { region: &'static str },
    /// The region's virtual or physical address is not page-aligned.
    Misaligned {
        region: &'static str,
        vaddr: usize,
        paddr: u64,
    },
    /// Memory the device could not reach: `paddr + size` lies past `limit`
    /// (`None`: past the end of the 64-bit address space).
    AboveLimit {
        region: &'static str,
        paddr: u64,
        size: u64,
        limit: Option<u64>,
    },
    /// A buffer handed to an engine narrower than its region's width.
    BufferAboveLimit {
        region: &'static str,
        buffer: &'static str,
        paddr: u64,
        size: usize,
        limit: u64,
    },
    /// An alignment that is not a power of two.
    BadAlign { region: &'static str, align: usize },
    /// An allocation of zero bytes.
    ZeroLength {
        region: &'static str,
        buffer: &'static str,
    },
    /// Not enough room left for an allocation.
    Exhausted {
        region: &'static str,
        buffer: &'static str,
        len: usize,
        align: usize,
        free: usize,
    },
}

impl fmt::Display for DmaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DmaError::Empty { region } => write!(f, "DMA region '{region}' is empty"),
            DmaError::Misaligned {
                region,
                vaddr,
                paddr,
            } => write!(
                f,
                "DMA region '{region}' at vaddr {vaddr:#x}, paddr {paddr:#x} is not page-aligned \
                 ({PAGE_SIZE:#x})"
            ),
            DmaError::AboveLimit {
                region,
                paddr,
                size,
                limit: Some(limit),
            } => write!(
                f,
                "DMA region '{region}' at paddr {paddr:#x}, size {size:#x} reaches past the \
                 device's address limit {limit:#x}; the device cannot address it (give the \
                 region a phys_addr below the limit)"
            ),
            DmaError::AboveLimit {
                region,
                paddr,
                size,
                limit: None,
            } => write!(
                f,
                "DMA region '{region}' at paddr {paddr:#x}, size {size:#x} wraps past the end of \
                 the physical address space"
            ),
            DmaError::BufferAboveLimit {
                region,
                buffer,
                paddr,
                size,
                limit,
            } => write!(
                f,
                "DMA buffer '{buffer}' of region '{region}' at paddr {paddr:#x}, size {size:#x} \
                 reaches past the device's address limit {limit:#x}"
            ),
            DmaError::BadAlign { region, align } => write!(
                f,
                "DMA region '{region}': alignment {align:#x} is not a power of two"
            ),
            DmaError::ZeroLength { region, buffer } => {
                write!(f, "DMA region '{region}': buffer '{buffer}' of zero bytes")
            }
            DmaError::Exhausted {
                region,
                buffer,
                len,
                align,
                free,
            } => write!(
                f,
                "DMA region '{region}' is exhausted: buffer '{buffer}' needs {len:#x} bytes \
                 aligned to {align:#x}, {free:#x} bytes are left"
            ),
        }
    }
}

impl core::error::Error for DmaError {}
