//! The root task's boot information: what the kernel handed over (untyped
//! memory, free CSpace slots, the TSC frequency).
//!
//! The layout comes from the generated [`layout`](crate::layout) module, and
//! the frame is read as bytes with bounds checks, so a captured blob can be
//! parsed on the host the same way as the live frame.

use crate::layout::*;
use core::fmt;

/// A range of CSpace slots, `start..end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotRegion {
    pub start: u64,
    pub end: u64,
}

impl SlotRegion {
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One untyped capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Untyped {
    /// Its CSpace slot.
    pub cptr: u64,
    pub paddr: u64,
    pub size_bits: u8,
    /// Device memory (MMIO); not to be used as RAM.
    pub is_device: bool,
}

impl Untyped {
    pub fn size(&self) -> u64 {
        1u64.checked_shl(self.size_bits as u32).unwrap_or(0)
    }
}

/// Why a blob is not a valid bootinfo frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootInfoError {
    /// Shorter than the bootinfo structure.
    Truncated { len: usize, need: usize },
    /// A slot region whose end is before its start.
    BadRegion {
        field: &'static str,
        start: u64,
        end: u64,
    },
    /// More untypeds than the kernel's list can hold.
    TooManyUntypeds { count: u64, max: usize },
}

impl fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { len, need } => write!(f, "bootinfo is {len} bytes, need {need}"),
            Self::BadRegion { field, start, end } => {
                write!(
                    f,
                    "bootinfo {field}: slot region {start}..{end} ends before it starts"
                )
            }
            Self::TooManyUntypeds { count, max } => {
                write!(f, "bootinfo lists {count} untypeds, at most {max} fit")
            }
        }
    }
}

/// Bytes of a machine word, as bootinfo's fields are laid out.
const WORD_BYTES: usize = crate::consts::WordBits / 8;

/// The little-endian word at `off` (the caller checked the bounds).
fn word_at(bytes: &[u8], off: usize) -> u64 {
    let mut w = [0u8; 8];
    w[..WORD_BYTES].copy_from_slice(&bytes[off..off + WORD_BYTES]);
    u64::from_le_bytes(w)
}

/// A validated view of a bootinfo frame.
#[derive(Clone, Copy)]
pub struct BootInfo<'a> {
    bytes: &'a [u8],
}

impl<'a> BootInfo<'a> {
    /// Checks the structure's size, its slot regions and the untyped count.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BootInfoError> {
        if bytes.len() < BI_SIZE {
            return Err(BootInfoError::Truncated {
                len: bytes.len(),
                need: BI_SIZE,
            });
        }
        let bi = Self { bytes };
        for (field, off) in [
            ("empty", BI_EMPTY),
            ("sharedFrames", BI_SHARED_FRAMES),
            ("userImageFrames", BI_USER_IMAGE_FRAMES),
            ("userImagePaging", BI_USER_IMAGE_PAGING),
            ("ioSpaceCaps", BI_IO_SPACE_CAPS),
            ("extraBIPages", BI_EXTRA_BI_PAGES),
            ("untyped", BI_UNTYPED),
        ] {
            let r = bi.region(off);
            if r.end < r.start {
                return Err(BootInfoError::BadRegion {
                    field,
                    start: r.start,
                    end: r.end,
                });
            }
        }
        let count = bi.untyped().len();
        let max = (BI_SIZE - BI_UNTYPED_LIST) / UT_SIZE;
        if count > max as u64 {
            return Err(BootInfoError::TooManyUntypeds { count, max });
        }
        Ok(bi)
    }

    /// The root task's bootinfo frame.
    ///
    /// # Safety
    /// `ptr` must be the bootinfo pointer the kernel passed to the root task,
    /// whose frame stays mapped and unmodified for `'a`.
    pub unsafe fn from_ptr(ptr: *const u8) -> Result<Self, BootInfoError> {
        // SAFETY: the kernel maps at least BI_SIZE bytes of bootinfo at `ptr`
        // (the caller's contract), read-only for the program's life.
        Self::parse(unsafe { core::slice::from_raw_parts(ptr, BI_SIZE) })
    }

    /// The raw frame, for a dump.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    fn word(&self, off: usize) -> u64 {
        word_at(self.bytes, off)
    }
    fn region(&self, off: usize) -> SlotRegion {
        SlotRegion {
            start: self.word(off + SLOT_REGION_START),
            end: self.word(off + SLOT_REGION_END),
        }
    }

    pub fn node_id(&self) -> u64 {
        self.word(BI_NODE_ID)
    }
    pub fn num_nodes(&self) -> u64 {
        self.word(BI_NUM_NODES)
    }
    /// Number of IOMMU page-table levels; 0 without an IOMMU.
    pub fn num_iopt_levels(&self) -> u64 {
        self.word(BI_NUM_IOPT_LEVELS)
    }
    /// Virtual address of the root task's IPC buffer.
    pub fn ipc_buffer(&self) -> u64 {
        self.word(BI_IPC_BUFFER)
    }
    /// Free slots of the root CNode.
    pub fn empty(&self) -> SlotRegion {
        self.region(BI_EMPTY)
    }
    pub fn user_image_frames(&self) -> SlotRegion {
        self.region(BI_USER_IMAGE_FRAMES)
    }
    pub fn user_image_paging(&self) -> SlotRegion {
        self.region(BI_USER_IMAGE_PAGING)
    }
    pub fn extra_bi_pages(&self) -> SlotRegion {
        self.region(BI_EXTRA_BI_PAGES)
    }
    /// Bytes of extra bootinfo chunks after the frame.
    pub fn extra_len(&self) -> u64 {
        self.word(BI_EXTRA_LEN)
    }
    pub fn cnode_size_bits(&self) -> u8 {
        self.bytes[BI_CNODE_SIZE_BITS]
    }
    /// On x86, the TSC frequency in MHz as the kernel measured it; unused
    /// (0) on ARM.
    pub fn tsc_mhz(&self) -> u64 {
        self.word(BI_ARCH_INFO)
    }
    /// Slots holding the untyped caps, in the order of [`untypeds`](Self::untypeds).
    pub fn untyped(&self) -> SlotRegion {
        self.region(BI_UNTYPED)
    }
    pub fn untypeds(&self) -> impl Iterator<Item = Untyped> + 'a {
        let bytes = self.bytes;
        let region = self.untyped();
        (0..region.len() as usize).map(move |i| {
            let d = &bytes[BI_UNTYPED_LIST + i * UT_SIZE..][..UT_SIZE];
            Untyped {
                cptr: region.start + i as u64,
                paddr: word_at(d, UT_PADDR),
                size_bits: d[UT_SIZE_BITS],
                is_device: d[UT_IS_DEVICE] != 0,
            }
        })
    }
}
